"""The utterance-level (CTC) layouts of CMU 11-785 HW3P2, read into frames + phoneme sequences.

==============  ==========================================  ================================
``source``      course and year                             files in ``data_dir``
==============  ==========================================  ================================
wsj             HW3P2 2019 / 2020 (WSJ, Kaggle)             ``wsj0_{train,dev,test}.npy``
                                                            object arrays of (T, 40) frames;
                                                            ``wsj0_{train,dev}_merged_labels.npy``
                                                            phoneme indices 0..45 (no blank)
librispeech     HW3P2 2021 on (LibriSpeech)                 ``<partition>/mfcc/<utt>.npy``
                                                            (T, D); ``transcript/<utt>.npy``
                                                            ``[SOS]`` L symbols ``[EOS]``
==============  ==========================================  ================================

A transcript is not aligned with its frames (L is much smaller than T). A split becomes a
:class:`SequenceSplit`: finite ``(T, D)`` frames and, when labelled, a non-empty sequence of
phoneme indices per utterance. The inventory (symbols, their one-character codes, feature
dimension) is the course's 46 phonemes for WSJ and the sorted symbol set of
``train-clean-100`` for LibriSpeech; it travels as a :class:`SequenceInventory` in the
checkpoint. Files are read with the NumPy-only unpickler (:mod:`data_modules.speech.layouts.wsj`);
every
bad input is one line naming the file and utterance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.speech.frames.checks import check_frames, frame_width, symbols_to_classes
from data_modules.speech.layouts import librispeech as librispeech_files
from data_modules.speech.layouts import phoneme_codes
from data_modules.speech.layouts.wsj import read_array, read_utterances

FORMATS = ("wsj", "librispeech")
COURSES = {
    "wsj": "CMU 11-785 HW3P2, 2019/2020 (WSJ)",
    "librispeech": "CMU 11-785 HW3P2, 2021 on (LibriSpeech)",
}
SUBMISSION_HEADER = {"wsj": "Id,Predicted", "librispeech": "index,label"}
WSJ_LAYOUT = "wsj0_train.npy, wsj0_train_merged_labels.npy, wsj0_dev.npy, "
WSJ_LAYOUT += "wsj0_dev_merged_labels.npy, wsj0_test.npy"
SOS, EOS = librispeech_files.SOS, librispeech_files.EOS


@dataclass(frozen=True)
class SequenceInventory:
    """Feature dimension and phoneme symbols (class i = ``symbols[i]``; CTC's blank is extra)."""

    format: str
    feature_dim: int
    symbols: tuple[str, ...]
    codes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.symbols)

    def to_state(self) -> dict[str, Any]:
        """Plain containers only: a checkpoint must load with ``torch.load(weights_only=True)``."""
        return {
            "format": self.format,
            "feature_dim": self.feature_dim,
            "symbols": list(self.symbols),
            "codes": list(self.codes),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SequenceInventory:
        return cls(
            str(state["format"]),
            int(state["feature_dim"]),
            tuple(str(s) for s in state["symbols"]),
            tuple(str(c) for c in state["codes"]),
        )

    def describe(self) -> str:
        shown = ", ".join(self.symbols[:4]) + (", ..." if len(self.symbols) > 4 else "")
        return (
            f"{self.format} utterances of {self.feature_dim} features, "
            f"{self.num_classes} phonemes ({shown})"
        )


@dataclass
class SequenceSplit:
    """A validated split: frames, phoneme-index sequences (None: unlabelled), and names."""

    frames: list[np.ndarray]
    targets: list[np.ndarray] | None
    names: list[str]  # where each utterance comes from, for messages ("file: utterance i")
    feature_dim: int


def wsj_inventory(feature_dim: int) -> SequenceInventory:
    return SequenceInventory(
        "wsj", feature_dim, phoneme_codes.WSJ_PHONEMES, phoneme_codes.WSJ_CODES
    )


def librispeech_inventory(feature_dim: int, symbols: tuple[str, ...]) -> SequenceInventory:
    codes = phoneme_codes.codes_for(symbols, phoneme_codes.LIBRISPEECH_CODES)
    return SequenceInventory("librispeech", feature_dim, symbols, codes)


# -- layout detection ------------------------------------------------------------------------
def _markers(data_dir: Path) -> dict[str, list[str]]:
    found = {
        "wsj": [
            n
            for n in ("wsj0_train.npy", "wsj0_dev.npy", "wsj0_test.npy")
            if (data_dir / n).is_file()
        ],
        "librispeech": [
            f"{part}/mfcc"
            for part in librispeech_files.PARTITIONS.values()
            if (data_dir / part / "mfcc").is_dir()
        ],
    }
    return {name: markers for name, markers in found.items() if markers}


def detect_format(data_dir: str | Path) -> tuple[str, list[str]]:
    """The layout ``source: auto`` reads in ``data_dir``, and the files that told it."""
    data_dir = Path(data_dir)
    markers = _markers(data_dir) if data_dir.is_dir() else {}
    if len(markers) == 1:
        return next(iter(markers.items()))
    if markers:
        listed = "; ".join(f"{name} ({', '.join(m)})" for name, m in markers.items())
        raise UserInputError(
            f"{data_dir}: holds files of several layouts: {listed}; choose one with "
            f"--data.source {' or '.join(markers)}"
        )
    raise InputFileNotFoundError(
        f"{data_dir}: no utterance-level (HW3P2) data found (source: auto). Expected one of: "
        f"wsj ({WSJ_LAYOUT}); librispeech ({librispeech_files.LAYOUT})"
    )


# -- readers -----------------------------------------------------------------------------------
def _check_utterances(where: list[str], frames: list[np.ndarray], width: int | None, source: str):
    if width is None:
        width, source = frame_width(where[0], frames[0]), "the first utterance"
    for name, utt in zip(where, frames, strict=True):
        check_frames(name, utt, width, source)
    return width


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


def wsj_files(data_dir: Path, split: str, need_labels: bool) -> tuple[Path, Path | None]:
    frames, labels = data_dir / f"wsj0_{split}.npy", data_dir / f"wsj0_{split}_merged_labels.npy"
    for p in (frames, labels) if need_labels else (frames,):
        if not p.is_file():
            found = sorted(q.name for q in data_dir.glob("*.npy")) if data_dir.is_dir() else []
            raise InputFileNotFoundError(
                f"{p}: missing. Expected in {data_dir}: {WSJ_LAYOUT} "
                f"(found: {', '.join(found) or 'nothing'})"
            )
    return frames, (labels if labels.is_file() else None)


def read_wsj(
    data_dir: Path, split: str, need_labels: bool, inventory: SequenceInventory | None
) -> SequenceSplit:
    frames_path, labels_path = wsj_files(data_dir, split, need_labels)
    frames = read_utterances(frames_path, "frames")
    if not frames:
        raise UserInputError(f"{frames_path}: holds no utterances")
    where = [f"{frames_path}: utterance {i}" for i in range(len(frames))]
    width = inventory.feature_dim if inventory is not None else None
    width = _check_utterances(where, frames, width, "the training data")
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
    symbols = read_array(path)
    if symbols.ndim != 1 or symbols.dtype.kind not in "USO":
        raise UserInputError(
            f"{path}: holds {symbols.dtype} {symbols.shape}, expected a 1-D array of phoneme "
            "symbols"
        )
    # str, numpy str or bytes (a bytes array's str() would be "b'AA'")
    symbols = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in symbols.tolist()])
    if len(symbols) and symbols[0] == SOS:
        symbols = symbols[1:]
    if len(symbols) and symbols[-1] == EOS:
        symbols = symbols[:-1]
    if len(symbols) == 0:
        raise UserInputError(f"{path}: empty transcript (no phoneme between {SOS} and {EOS})")
    return symbols


def read_librispeech(
    data_dir: Path, split: str, need_labels: bool, inventory: SequenceInventory | None
) -> tuple[SequenceSplit, SequenceInventory]:
    """One partition, and the inventory (the given one, or the training partition's)."""
    mfcc, transcripts = librispeech_files.partition_files(data_dir, split, need_labels)
    frames = [read_array(p) for p in mfcc]
    where = [str(p) for p in mfcc]
    width = inventory.feature_dim if inventory is not None else None
    width = _check_utterances(where, frames, width, "the training data")
    if transcripts is None:
        inventory = inventory or librispeech_inventory(width, ())
        return SequenceSplit(frames, None, where, width), inventory
    symbols = [_symbols_of(p) for p in transcripts]
    if inventory is None:
        found = tuple(sorted({str(s) for seq in symbols for s in seq}))
        inventory, classes_from = librispeech_inventory(width, found), "the symbols found"
    else:
        classes_from = "the training transcripts"
    index = {s: i for i, s in enumerate(inventory.symbols)}
    targets = [
        symbols_to_classes(str(path), seq, index, classes_from)
        for path, seq in zip(transcripts, symbols, strict=True)
    ]
    return SequenceSplit(frames, targets, where, width), inventory


def read_split(
    fmt: str, data_dir: str | Path, split: str, need_labels: bool,
    inventory: SequenceInventory | None,
) -> tuple[SequenceSplit, SequenceInventory]:  # fmt: skip
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
    data_dir = Path(data_dir)
    if fmt == "wsj":
        return (
            (data_dir / f"wsj0_{split}.npy").is_file(),
            (data_dir / f"wsj0_{split}_merged_labels.npy").is_file(),
        )
    part = data_dir / librispeech_files.PARTITIONS[split]
    return (part / "mfcc").is_dir(), (part / "transcript").is_dir()
