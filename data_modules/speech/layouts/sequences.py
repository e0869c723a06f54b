"""The utterance-level (CTC) layouts of CMU 11-785 HW3P2: frames and phoneme sequences.

``wsj`` (2019/2020): ``wsj0_{split}.npy`` object arrays of (T, 40) frames and
``wsj0_{split}_merged_labels.npy`` phoneme indices 0..45 (no blank). ``librispeech`` (2021 on):
``<partition>/mfcc/<utt>.npy`` and ``transcript/<utt>.npy`` (``[SOS]`` L symbols ``[EOS]``,
not aligned), classes the training transcripts' sorted symbols."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_modules.errors import UserInputError
from data_modules.speech import checks
from data_modules.speech.checks import Inventory, check_utterances
from data_modules.speech.layouts import librispeech as librispeech_files
from data_modules.speech.layouts import phoneme_codes
from data_modules.speech.layouts.wsj import read_array, read_utterances, split_files

FORMATS = ("wsj", "librispeech")
COURSES = {
    "wsj": "CMU 11-785 HW3P2, 2019/2020 (WSJ)",
    "librispeech": "CMU 11-785 HW3P2, 2021 on (LibriSpeech)",
}
SUBMISSION_HEADER = {"wsj": "Id,Predicted", "librispeech": "index,label"}
WSJ_FILES = "wsj0_{}.npy wsj0_{}_merged_labels.npy"  # a split's frames and labels
WSJ_LAYOUT = "wsj0_train.npy, wsj0_train_merged_labels.npy, wsj0_dev.npy, "
WSJ_LAYOUT += "wsj0_dev_merged_labels.npy, wsj0_test.npy"
SOS, EOS = librispeech_files.SOS, librispeech_files.EOS


@dataclass
class SequenceSplit:
    """A validated split: frames, phoneme-index sequences (None: unlabelled), and names."""

    frames: list[np.ndarray]
    targets: list[np.ndarray] | None
    names: list[str]  # where each utterance comes from, for messages ("file: utterance i")
    feature_dim: int


def wsj_inventory(feature_dim: int) -> Inventory:
    symbols = phoneme_codes.WSJ_PHONEMES
    return Inventory("wsj", feature_dim, len(symbols), symbols, phoneme_codes.WSJ_CODES)


def librispeech_inventory(feature_dim: int, symbols: tuple[str, ...], where: str) -> Inventory:
    codes = phoneme_codes.codes_for(symbols, phoneme_codes.LIBRISPEECH_CODES, where)
    return Inventory("librispeech", feature_dim, len(symbols), symbols, codes)


def _markers(data_dir: Path) -> dict[str, list[str]]:
    found = {
        "wsj": checks.present(data_dir, ("wsj0_train.npy", "wsj0_dev.npy", "wsj0_test.npy")),
        "librispeech": checks.present(data_dir, librispeech_files.MARKERS),
    }
    return {name: markers for name, markers in found.items() if markers}


def detect_format(data_dir: str | Path) -> tuple[str, list[str]]:
    """The layout ``source: auto`` reads in ``data_dir``, and the files that told it."""
    expected = f"wsj ({WSJ_LAYOUT}); librispeech ({librispeech_files.LAYOUT})"
    return checks.detect_format(data_dir, _markers, "utterance-level (HW3P2)", expected)


def _check_sequence(where: str, seq: np.ndarray, num_classes: int) -> None:
    if seq.ndim != 1 or not np.issubdtype(seq.dtype, np.integer):
        raise UserInputError(
            f"{where}: label sequence of {seq.dtype} {seq.shape}, expected 1-D phoneme indices"
        )
    if len(seq) == 0:
        raise UserInputError(f"{where}: empty label sequence (CTC needs at least one phoneme)")
    out = (seq < 0) | (seq >= num_classes)
    if out.any():
        bad = int(np.flatnonzero(out)[0])
        raise UserInputError(
            f"{where}: phoneme index {int(seq[bad])} at position {bad}, expected 0.."
            f"{num_classes - 1} (the course's {num_classes} phonemes; the blank is not a label)"
        )


def read_wsj(
    data_dir: Path, split: str, need_labels: bool, inventory: Inventory | None
) -> SequenceSplit:
    frames_path, labels_path = split_files(data_dir, split, need_labels, WSJ_FILES, WSJ_LAYOUT)
    frames = read_utterances(frames_path, "frames")
    if not frames:
        raise UserInputError(f"{frames_path}: holds no utterances")
    where = [f"{frames_path}: utterance {i}" for i in range(len(frames))]
    width = check_utterances(where, frames, inventory, "the first utterance")
    if labels_path is None:
        return SequenceSplit(frames, None, where, width)
    targets = read_utterances(labels_path, "labels")
    if len(targets) != len(frames):
        raise UserInputError(
            f"{labels_path}: {len(targets)} label sequences but {frames_path} has "
            f"{len(frames)} utterances"
        )
    n = len(phoneme_codes.WSJ_PHONEMES)
    for i, seq in enumerate(targets):
        _check_sequence(f"{labels_path}: utterance {i}", seq, n)
    return SequenceSplit(frames, [t.astype(np.int64) for t in targets], where, width)


def _symbols_of(path: Path) -> np.ndarray:
    """A transcript's phoneme symbols, ``[SOS]``/``[EOS]`` dropped."""
    symbols = librispeech_files.read_symbols(path)
    if len(symbols) and symbols[0] == SOS:
        symbols = symbols[1:]
    if len(symbols) and symbols[-1] == EOS:
        symbols = symbols[:-1]
    if len(symbols) == 0:
        raise UserInputError(f"{path}: empty transcript (no phoneme between {SOS} and {EOS})")
    return symbols


def read_librispeech(
    data_dir: Path, split: str, need_labels: bool, inventory: Inventory | None
) -> tuple[SequenceSplit, Inventory]:
    """One partition, and the inventory (the given one, or the training partition's)."""
    mfcc, transcripts = librispeech_files.partition_files(data_dir, split, need_labels)
    frames = [read_array(p) for p in mfcc]
    where = [str(p) for p in mfcc]
    width = check_utterances(where, frames, inventory, "the first utterance")
    if transcripts is None:
        inventory = inventory or librispeech_inventory(width, (), "")
        return SequenceSplit(frames, None, where, width), inventory
    symbols = [_symbols_of(p) for p in transcripts]
    targets, found = librispeech_files.to_classes(transcripts, symbols, inventory)
    inventory = inventory or librispeech_inventory(width, found, str(transcripts[0].parent))
    return SequenceSplit(frames, targets, where, width), inventory


def read_split(
    fmt: str, data_dir: str | Path, split: str, need_labels: bool,
    inventory: Inventory | None,
) -> tuple[SequenceSplit, Inventory]:  # fmt: skip
    """Read ``split`` of a folder in layout ``fmt``; the inventory comes back with it."""
    data_dir = Path(data_dir)
    if fmt == "wsj":
        data = read_wsj(data_dir, split, need_labels, inventory)
        return data, inventory or wsj_inventory(data.feature_dim)
    if fmt == "librispeech":
        return read_librispeech(data_dir, split, need_labels, inventory)
    raise UserInputError(f"unknown utterance layout {fmt!r}; expected one of {FORMATS}")


def has_split(fmt: str, data_dir: str | Path, split: str) -> tuple[bool, bool]:
    """(split present, split has labels) without reading it."""
    if fmt == "wsj":
        names = [name.format(split) for name in WSJ_FILES.split()]
    else:
        names = [f"{librispeech_files.PARTITIONS[split]}/{kind}" for kind in ("mfcc", "transcript")]
    present, labelled = (Path(data_dir, name).exists() for name in names)
    return present, labelled
