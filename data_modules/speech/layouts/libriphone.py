"""NTU ML2022 Spring HW2 (libriphone): ``feat/{train,test}/<utt>.pt`` (T, 39) loaded
weights-only, ``{train,test}_split.txt`` ids in submission order, ``train_labels.txt`` lines
``<utt> l1 ... lT``. No dev split: validation is a seeded ``val_fraction`` of train."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.speech.checks import (
    Inventory,
    SplitData,
    check_labels,
    folder_contents,
    read_frame_files,
)

SPLIT_LISTS = {"train": "train_split.txt", "dev": "train_split.txt", "test": "test_split.txt"}
LABEL_FILES = {"train": "train_labels.txt", "dev": "train_labels.txt", "test": "test_labels.txt"}
FEATURE_DIRS = {"train": "feat/train", "dev": "feat/train", "test": "feat/test"}
LAYOUT = "feat/train/*.pt, feat/test/*.pt, train_split.txt, test_split.txt, train_labels.txt"


def _text_lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise InputFileNotFoundError(
            f"{path}: missing. Expected in {path.parent}: {LAYOUT} "
            f"(found: {folder_contents(path.parent)})"
        )
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise UserInputError(f"{path}: not a text file ({error})") from error
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_ids(path: Path) -> list[str]:
    """Utterance ids, one a line, in file order; a repeated id is an error."""
    ids, seen = [], {}
    for number, line in _text_lines(path):
        utt = line.split()[0]
        if utt in seen:
            raise UserInputError(
                f"{path}: line {number} repeats utterance {utt!r} (line {seen[utt]})"
            )
        seen[utt] = number
        ids.append(utt)
    if not ids:
        raise UserInputError(f"{path}: lists no utterances")
    return ids


def read_label_lines(path: Path) -> dict[str, np.ndarray]:
    """``{utt: (T,) int64 classes}`` from lines ``utt l1 ... lT``."""
    labels: dict[str, np.ndarray] = {}
    for number, line in _text_lines(path):
        utt, *tokens = line.split()
        if utt in labels:
            raise UserInputError(f"{path}: line {number} repeats utterance {utt!r}")
        try:
            labels[utt] = np.array([int(t) for t in tokens], dtype=np.int64)
        except ValueError:
            bad = next(t for t in tokens if not t.lstrip("-").isdigit())
            raise UserInputError(
                f"{path}: line {number} ({utt}) has {bad!r}, expected integer classes"
            ) from None
    return labels


def split_ids(data_dir: Path, split: str, val_fraction: float, split_seed: int) -> list[str]:
    """Ids of ``split``: test in list order, train and dev a seeded partition of train's."""
    ids = read_ids(data_dir / SPLIT_LISTS[split])
    if split == "test":
        return ids
    n_val = min(len(ids) - 1, max(1, round(len(ids) * val_fraction)))
    if n_val < 1:
        raise UserInputError(
            f"{data_dir / SPLIT_LISTS[split]}: {len(ids)} utterance(s), too few to hold one out "
            "for validation"
        )
    order = np.random.default_rng(split_seed).permutation(len(ids))
    chosen = np.sort(order[:n_val] if split == "dev" else order[n_val:])
    return [ids[i] for i in chosen]


def feature_files(data_dir: Path, split: str, ids: list[str]) -> list[Path]:
    folder = data_dir / FEATURE_DIRS[split]
    if not folder.is_dir():
        raise InputFileNotFoundError(f"{folder}: missing. Expected in {data_dir}: {LAYOUT}")
    paths = [folder / f"{utt}.pt" for utt in ids]
    if missing := [p for p in paths if not p.is_file()]:
        raise InputFileNotFoundError(
            f"{missing[0]}: missing, but {data_dir / SPLIT_LISTS[split]} lists it "
            f"({len(missing)} listed utterance(s) without a feature file)"
        )
    return paths


def labels_file(data_dir: Path, split: str, need_labels: bool) -> Path | None:
    path = data_dir / LABEL_FILES[split]
    if path.is_file():
        return path
    if need_labels:
        raise InputFileNotFoundError(
            f"{path}: missing; the {split} split needs labels (expected in {data_dir}: {LAYOUT})"
        )
    return None


def read_features(path: Path) -> np.ndarray:
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(error)
        if "Unsupported global" in reason:
            raise UserInputError(
                f"{path}: holds Python objects other than tensors ({reason}); refused, as a "
                "downloaded file could run code while loading"
            ) from error
        raise UserInputError(f"{path}: truncated or not a torch file ({reason})") from error
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:
        raise UserInputError(
            f"{path}: truncated or not a torch file ({type(error).__name__})"
        ) from error
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        kind = (
            f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else type(value).__name__
        )
        raise UserInputError(f"{path}: holds {kind}, expected a (T, D) float tensor")
    return value.numpy()


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's weights-only refusal that says what it refused."""
    lines = [line.strip() for line in str(error).splitlines() if "Unsupported" in line]
    reason = lines[0] if lines else str(error).splitlines()[0]
    return reason.split("WeightsUnpickler error: ")[-1].split(". ")[0]


def read_split(
    paths: list[Path], ids: list[str], labels_path: Path | None, inventory: Inventory | None
) -> SplitData:
    """Read and validate the utterances ``ids``; classes are checked against the inventory
    (reading the training data, against 1 + the largest class in its label file)."""
    frames, width = read_frame_files(paths, read_features, inventory)
    if labels_path is None:
        return SplitData(frames, None, width)
    by_id = read_label_lines(labels_path)
    if inventory is not None:
        num_classes, classes_from = inventory.num_classes, "the training labels"
    else:
        num_classes = 1 + max((int(v.max()) for v in by_id.values() if len(v)), default=-1)
        classes_from = f"the classes in {labels_path.name}"
    labels = []
    for utt, path, x in zip(ids, paths, frames, strict=True):
        if utt not in by_id:
            raise UserInputError(f"{labels_path}: no line for utterance {utt!r} ({path.name})")
        lab = by_id[utt]
        if len(lab) != len(x):
            raise UserInputError(
                f"{labels_path}: utterance {utt!r} has {len(lab)} labels for the {len(x)} frames "
                f"of {path}"
            )
        check_labels(f"{labels_path}: utterance {utt!r}", lab, len(x), num_classes, classes_from)
        labels.append(lab)
    return SplitData(frames, labels, width, num_classes)
