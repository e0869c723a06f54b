"""CMU 11-785 HW1P2 from 2021 on (LibriSpeech): MFCC frames and phoneme-symbol transcripts.

``<root>/{train-clean-100,dev-clean,test-clean}/mfcc/<utt>.npy`` (T, D) and, but for test,
``transcript/<utt>.npy`` (``[SOS]``, a symbol per frame, ``[EOS]``), paired by sorted name. The
classes are the training transcripts' sorted symbols (or a demo manifest's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.speech.checks import (
    Inventory,
    SplitData,
    folder_contents,
    read_frame_files,
    symbols_to_classes,
)
from data_modules.speech.layouts.wsj import read_array

PARTITIONS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
MARKERS = tuple(f"{part}/mfcc" for part in PARTITIONS.values())  # what tells the layout
SOS, EOS = "[SOS]", "[EOS]"
LAYOUT = (
    "train-clean-100/, dev-clean/ and test-clean/, each with mfcc/*.npy and (except "
    "test-clean) transcript/*.npy"
)


def partition_files(
    data_dir: Path, split: str, need_labels: bool
) -> tuple[list[Path], list[Path] | None]:
    """The sorted MFCC files of ``split``'s partition and their transcripts (None if absent)."""
    part = data_dir / PARTITIONS[split]
    mfcc_dir, transcript_dir = part / "mfcc", part / "transcript"
    if not mfcc_dir.is_dir():
        raise InputFileNotFoundError(
            f"{mfcc_dir}: missing partition. Expected in {data_dir}: {LAYOUT} "
            f"(found: {folder_contents(data_dir)})"
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
    paths: list[Path], symbols: list[np.ndarray], inventory: Inventory | None
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
