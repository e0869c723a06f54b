"""Safe reading and validation of the Kaggle WSJ ``.npy`` files: their object arrays are pickles,
unpickled by :mod:`data_modules.io.safe_pickle`."""

from __future__ import annotations

import ast
import struct
from pathlib import Path
from typing import Any

import numpy as np

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.io.safe_pickle import UnsafePickleError, safe_load
from data_modules.speech.checks import (
    Inventory,
    SplitData,
    check_labels,
    check_utterances,
    folder_contents,
    largest_class,
    present,
)

CLASSES = 138  # the Kaggle WSJ task's: 46 phonemes x 3 states
CLASSES_FROM = f"the classes of the training labels, or of dev's up to the task's {CLASSES}"
# what one utterance of a frames or labels file is, and its number of dimensions
UTTERANCE_KINDS = {"frames": ("(T, D) frames", 2), "labels": ("(T,) labels", 1)}


def _read_header(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:  # 3.0 differs from 2.0 only by a utf-8 header; numpy has no public reader for it
        shape, dtype = _read_header_3_0(f)
    return shape, dtype


def _read_header_3_0(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    (length,) = struct.unpack("<I", f.read(4))
    try:
        header = ast.literal_eval(f.read(length).decode("utf-8"))
        shape, dtype = tuple(header["shape"]), np.lib.format.descr_to_dtype(header["descr"])
    except (SyntaxError, ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot parse the version 3.0 header ({e})") from e
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"the version 3.0 header has shape {shape}")
    return shape, dtype


def read_array(path: str | Path) -> np.ndarray:
    """One ``.npy`` file: plain arrays with ``allow_pickle=False``, object arrays through the
    numpy-only unpickler (they may hold arrays, numbers and strings, never code)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: file not found")
    with open(path, "rb") as f:
        try:
            shape, dtype = _read_header(f)
        except ValueError as e:
            raise UserInputError(f"{path}: not a valid .npy file ({e})") from e
        if not dtype.hasobject:
            f.seek(0)
            try:
                return np.load(f, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise UserInputError(f"{path}: not a readable .npy file ({e})") from e
        try:
            obj = safe_load(f, str(path))
        except UnsafePickleError:
            raise
        except Exception as e:  # truncated or corrupt pickle
            raise UserInputError(f"{path}: cannot read pickled object array ({e})") from e
    if not isinstance(obj, np.ndarray) or obj.shape != shape:
        raise UserInputError(f"{path}: payload is not an array of shape {shape} as the header says")
    return obj


def read_utterances(path: str | Path, kind: str = "frames") -> list[np.ndarray]:
    """A WSJ ``.npy`` file as a list of per-utterance arrays: an object array's, or a plain array
    stacking equal-length ones (refused with the dimensions of one utterance of ``kind``)."""
    item, item_ndim = UTTERANCE_KINDS[kind]
    arr = read_array(path)
    if not arr.dtype.hasobject:
        if arr.ndim != item_ndim + 1:
            raise UserInputError(
                f"{path}: holds one plain {arr.dtype} array of shape {arr.shape}, not "
                f"utterances: it must be a numpy object array of utterances, each an array of "
                f"{item} (as the Kaggle files are), or one stacked (utterances, ...) array"
            )
        return list(arr)
    out = []
    for i, utt in enumerate(arr.reshape(-1)):
        if not isinstance(utt, np.ndarray) or utt.dtype.hasobject:
            raise UserInputError(
                f"{path}: utterance {i} is {type(utt).__name__}, expected a numeric ndarray "
                f"of {item}"
            )
        out.append(utt)
    return out


KAGGLE_FILES = "train.npy, train_labels.npy, dev.npy, dev_labels.npy, test.npy"
LABEL_FILES = {"kaggle": "_labels.npy", "wsj_chars": "_transcripts.npy"}  # beside {split}.npy


def markers(data_dir: Path) -> dict[str, list[str]]:
    """The 2019 layouts of ``train.npy``, ``dev.npy``, ``test.npy``, told by their label files:
    HW1P2's frame labels (``kaggle``) or HW4P2's transcripts (``wsj_chars``)."""
    features = present(data_dir, ("train.npy", "dev.npy", "test.npy"))
    labels = {k: present(data_dir, (f"train{e}", f"dev{e}")) for k, e in LABEL_FILES.items()}
    found = {name: features + files for name, files in labels.items() if files and features}
    return found or {"kaggle": features}


def split_files(
    data_dir: Path, split: str, need_labels: bool, names: str = "{}.npy {}_labels.npy",
    layout: str = KAGGLE_FILES,
) -> tuple[Path, Path | None]:  # fmt: skip
    """The frames and labels files (None: absent, not needed) of ``split``, named ``names``."""
    frames, labels = (data_dir / name.format(split) for name in names.split())
    for p in (frames, labels) if need_labels else (frames,):
        if not p.is_file():
            raise InputFileNotFoundError(
                f"{p}: missing. Expected in {data_dir}: {layout} "
                f"(found: {folder_contents(data_dir)})"
            )
    return frames, (labels if labels.is_file() else None)


def _largest_dev_class(path: Path | None) -> int:
    """The largest class in a dev labels file (-1: none); reading dev itself checks the rest."""
    if path is None:
        return -1
    labels = [
        lab for lab in read_utterances(path, "labels")
        if lab.ndim == 1 and np.issubdtype(lab.dtype, np.integer)
    ]  # fmt: skip
    return largest_class(labels)


def read_split(
    frames_path: Path,
    labels_path: Path | None,
    inventory: Inventory | None = None,
    dev_labels: Path | None = None,
) -> SplitData:
    """Read and validate one split, with the inventory's width and classes (training: the first
    utterance's width, and classes up to dev's largest too, which a training subset may lack)."""
    utts = read_utterances(frames_path)
    if not utts:
        raise UserInputError(f"{frames_path}: holds no utterances")
    names = [f"{frames_path}: utterance {i}" for i in range(len(utts))]
    width = check_utterances(names, utts, inventory, "utterance 0")
    if labels_path is None:
        return SplitData(utts, None, width)
    labs = read_utterances(labels_path, "labels")
    if len(labs) != len(utts):
        raise UserInputError(
            f"{labels_path}: {len(labs)} label arrays but {frames_path} has {len(utts)} utterances"
        )
    num_classes = inventory.num_classes if inventory is not None else None
    for i, (u, lab) in enumerate(zip(utts, labs, strict=True)):
        check_labels(f"{labels_path}: utterance {i}", lab, len(u), num_classes, CLASSES_FROM)
    if num_classes is None:
        dev_classes = min(_largest_dev_class(dev_labels) + 1, CLASSES)  # beyond: refused there
        num_classes = max(largest_class(labs) + 1, dev_classes)
    return SplitData(utts, labs, width, num_classes)
