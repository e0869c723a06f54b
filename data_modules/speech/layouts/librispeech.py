"""CMU 11-785 HW1P2 from 2021 on (LibriSpeech): MFCC frames and phoneme-symbol transcripts.

``<partition>/mfcc/<utt>.npy`` (T, D) and, but for test, ``transcript/<utt>.npy`` (``[SOS]``, a
symbol per frame, ``[EOS]``), paired by sorted name. HW4P2: character transcripts instead."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.speech.checks import (
    Inventory,
    SplitData,
    folder_contents,
    present,
    read_frame_files,
    symbols_to_classes,
)
from data_modules.speech.layouts.wsj import read_array

PARTITIONS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
MARKERS = tuple(f"{part}/mfcc" for part in PARTITIONS.values())  # what tells the layout
SOS, EOS = "[SOS]", "[EOS]"
CHAR_MARKS = ("<sos>", "<eos>")  # HW4P2's, around characters
CHAR_TEXTS = ("transcript/raw", "transcripts", "text")  # HW4P2's, Fall 2022, 2023, 2024 on
FEATURES = ("mfcc", "fbank")  # fbank files hold (F, T)
LAYOUT = (
    "train-clean-100/, dev-clean/ and test-clean/, each with mfcc/*.npy and (except "
    "test-clean) transcript/*.npy"
)
CHAR_LAYOUT = LAYOUT.replace("mfcc/*.npy", "mfcc/*.npy (or fbank/)").replace("t/", "t/raw/")


def folders(data_dir: Path, split: str, chars: bool) -> tuple[str, str]:
    """A partition's features and transcript folder names: HW4P2's first present, if ``chars``."""
    if not chars:
        return "mfcc", "transcript"
    part = data_dir / PARTITIONS[split]
    features = (present(part, FEATURES) or ["mfcc"])[0]
    return features, (present(part, (*CHAR_TEXTS, "transcript")) or [CHAR_TEXTS[0]])[0]


def _content_kind(folder: Path) -> str | None:
    """``librispeech_chars`` or ``librispeech`` from a first transcript; None: cannot tell."""
    first = min(folder.glob("*.npy"), default=None)
    symbols = [] if first is None else read_symbols(first).tolist()
    if any(s in CHAR_MARKS or s == " " for s in symbols):
        return "librispeech_chars"
    if first is None or any(len(s) > 1 for s in symbols):
        return "librispeech"
    return None


def markers(data_dir: Path) -> dict[str, list[str]]:
    """The LibriSpeech layout in ``data_dir``, told by its folders (HW4P2's ``transcript/raw``,
    ``text``, ``fbank``) or else by what a ``transcript/`` file spells: phonemes or characters."""
    parts = PARTITIONS.values()
    chars = present(data_dir, [f"{p}/{t}" for p in parts for t in (*CHAR_TEXTS, "fbank")])
    if chars:
        return {"librispeech_chars": chars}
    plain = present(data_dir, [f"{p}/transcript" for p in parts])
    kind = _content_kind(data_dir / plain[0]) if plain else "librispeech"
    if kind is None:
        raise UserInputError(
            f"{data_dir / plain[0]}: cannot tell phoneme transcripts from character ones (one-"
            "letter symbols only); choose with --data.source librispeech or librispeech_chars"
        )
    found = present(data_dir, MARKERS) + (plain if kind == "librispeech_chars" else [])
    return {kind: found}


def partition_files(
    data_dir: Path, split: str, need_labels: bool, chars: bool = False
) -> tuple[list[Path], list[Path] | None]:
    """The sorted feature files of ``split``'s partition and their transcripts (None if absent)."""
    part = data_dir / PARTITIONS[split]
    mfcc_dir, transcript_dir = (part / name for name in folders(data_dir, split, chars))
    if not mfcc_dir.is_dir():
        raise InputFileNotFoundError(
            f"{mfcc_dir}: missing partition. Expected in {data_dir}: "
            f"{CHAR_LAYOUT if chars else LAYOUT} (found: {folder_contents(data_dir)})"
        )
    mfcc = sorted(mfcc_dir.glob("*.npy"))
    if not mfcc:
        raise UserInputError(f"{mfcc_dir}: holds no .npy files")
    if not transcript_dir.is_dir():
        if need_labels:
            raise InputFileNotFoundError(
                f"{transcript_dir}: missing; the {PARTITIONS[split]} partition needs "
                "transcripts for training and evaluation"
            )
        return mfcc, None
    transcripts = sorted(transcript_dir.glob("*.npy"))
    frames_names = {p.name for p in mfcc}
    symbol_names = {p.name for p in transcripts}
    if frames_names != symbol_names:
        lonely_frames = sorted(frames_names - symbol_names)
        if lonely_frames:
            raise UserInputError(
                f"{mfcc_dir / lonely_frames[0]}: no transcript {transcript_dir / lonely_frames[0]}"
                f" ({len(lonely_frames)} MFCC file(s) without a transcript)"
            )
        lonely = sorted(symbol_names - frames_names)
        raise UserInputError(
            f"{transcript_dir / lonely[0]}: no MFCC file {mfcc_dir / lonely[0]} "
            f"({len(lonely)} transcript(s) without frames)"
        )
    return mfcc, transcripts


def read_symbols(path: Path) -> np.ndarray:
    """A transcript's symbols as ``str`` (a bytes array's ``str()`` would be "b'AA'")."""
    symbols = read_array(path)
    if symbols.ndim != 1 or symbols.dtype.kind not in "USO":
        raise UserInputError(
            f"{path}: holds {symbols.dtype} {symbols.shape}, expected a 1-D array of phoneme "
            "symbols"
        )
    return np.array([s.decode() if isinstance(s, bytes) else str(s) for s in symbols.tolist()])


def read_transcript(path: Path, n_frames: int, frames_path: Path) -> np.ndarray:
    """The per-frame symbols of one transcript, ``[SOS]``/``[EOS]`` dropped."""
    symbols = read_symbols(path)
    if len(symbols) == n_frames + 2 and symbols[0] == SOS and symbols[-1] == EOS:
        return symbols[1:-1]
    if len(symbols) == n_frames:
        return symbols
    raise UserInputError(
        f"{path}: {len(symbols)} symbols for the {n_frames} frames of {frames_path} (expected "
        f"{n_frames + 2}, with {SOS} and {EOS} at the ends)"
    )


def read_split(
    mfcc: list[Path], transcripts: list[Path] | None, inventory: Inventory | None
) -> SplitData:
    """Read and validate one partition; labels are class indices of ``inventory``'s symbols
    (or, for the training partition without one, of the sorted symbols found)."""
    frames, width = read_frame_files(mfcc, read_array, inventory)
    if transcripts is None:
        return SplitData(frames, None, width)
    per_frame = [
        read_transcript(path, len(utt), frames_path)
        for path, utt, frames_path in zip(transcripts, frames, mfcc, strict=True)
    ]
    labels, symbols = to_classes(transcripts, per_frame, inventory)
    return SplitData(frames, labels, width, len(symbols), symbols)


def to_classes(
    paths: Sequence[Path | str], symbols: list[np.ndarray], inventory: Inventory | None
) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """Each transcript's class indices, in the order of the inventory's symbols (or, reading
    the training partition, of the sorted symbols found), and that order."""
    known = inventory.symbols if inventory is not None else None
    order = known if known is not None else tuple(sorted({str(s) for seq in symbols for s in seq}))
    classes_from = "the training transcripts" if known is not None else "the symbols found"
    index = {s: i for i, s in enumerate(order)}
    labels = [
        symbols_to_classes(str(path), seq, index, classes_from)
        for path, seq in zip(paths, symbols, strict=True)
    ]
    return labels, order
