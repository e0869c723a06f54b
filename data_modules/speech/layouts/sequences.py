"""The utterance-level layouts of CMU 11-785 HW3P2 (phonemes, CTC) and HW4P2 (characters):
``wsj``: ``wsj0_{split}.npy`` frames, ``wsj0_{split}_merged_labels.npy`` phonemes 0..45 (no
blank); ``wsj_chars``: ``{split}_transcripts.npy`` (byte-string words); ``librispeech*``: see
:mod:`.librispeech`. Classes: the training transcripts' sorted symbols or characters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_modules.errors import UserInputError
from data_modules.speech import checks
from data_modules.speech.checks import Inventory, check_utterances
from data_modules.speech.layouts import librispeech as librispeech_files
from data_modules.speech.layouts import phoneme_codes
from data_modules.speech.layouts import wsj as wsj_files
from data_modules.speech.layouts.wsj import read_array, read_utterances, split_files

FORMATS = ("wsj", "librispeech", "wsj_chars", "librispeech_chars")
COURSES = {
    "wsj": "CMU 11-785 HW3P2, 2019/2020 (WSJ)",
    "librispeech": "CMU 11-785 HW3P2, 2021 on (LibriSpeech)",
    "wsj_chars": "CMU 11-785 HW4P2, 2019/2020 (WSJ)",
    "librispeech_chars": "CMU 11-785 HW4P2, Fall 2022 on (LibriSpeech)",
}
SUBMISSION_HEADER = {f: "Id,Predicted" if f.startswith("wsj") else "index,label" for f in FORMATS}
WSJ_FILES = "wsj0_{}.npy wsj0_{}_merged_labels.npy"  # a split's frames and labels
WSJ_LAYOUT = "wsj0_train.npy, wsj0_train_merged_labels.npy, wsj0_dev.npy, "
WSJ_LAYOUT += "wsj0_dev_merged_labels.npy, wsj0_test.npy"
CHAR_FILES = "{}.npy {}_transcripts.npy"
CHAR_LAYOUT = "train.npy, train_transcripts.npy, dev.npy, dev_transcripts.npy, test.npy"
READER = "data_modules.speech.frames.datamodule.SpeechFramesDataModule"
FOREIGN = {"kaggle": f"HW1P2's frame labels, which {READER} reads"}  # another task's layout
SOS, EOS = librispeech_files.SOS, librispeech_files.EOS


@dataclass
class SequenceSplit:
    """A validated split: frames, class-index sequences (phonemes or characters; None:
    unlabelled), and names."""

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


def char_inventory(fmt: str, feature_dim: int, characters: tuple[str, ...]) -> Inventory:
    return Inventory(fmt, feature_dim, len(characters), characters, characters)


def markers(data_dir: Path) -> dict[str, list[str]]:
    """For each layout, the marker files or folders of it that ``data_dir`` holds."""
    wsj = checks.present(data_dir, ("wsj0_train.npy", "wsj0_dev.npy", "wsj0_test.npy"))
    return {"wsj": wsj, **wsj_files.markers(data_dir), **librispeech_files.markers(data_dir)}


def detect_format(data_dir: str | Path) -> tuple[str, list[str]]:
    """The layout ``source: auto`` reads in ``data_dir``, and the files that told it."""
    expected = (
        f"wsj ({WSJ_LAYOUT}); librispeech ({librispeech_files.LAYOUT}); wsj_chars "
        f"({CHAR_LAYOUT}); librispeech_chars ({librispeech_files.CHAR_LAYOUT})"
    )
    return checks.detect_format(data_dir, markers, "utterance-level", expected, FOREIGN)


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


def _sentence(where: str, words: object) -> str:
    """An HW4P2 WSJ transcript: its words (bytes or str, in an array or a list) joined by single
    spaces; a transcript that is the sentence itself is taken as it is."""
    items = words.tolist() if isinstance(words, np.ndarray) and words.ndim <= 1 else words
    items = [items] if isinstance(items, bytes | str) else items
    if not isinstance(items, list | tuple) or not all(isinstance(w, bytes | str) for w in items):
        what = f"{type(words).__name__} {getattr(words, 'shape', '')}".strip()
        raise UserInputError(f"{where}: transcript is {what}, expected a 1-D array of words")
    try:
        return " ".join(w.decode() if isinstance(w, bytes) else w for w in items)
    except UnicodeDecodeError as error:
        raise UserInputError(f"{where}: transcript is not UTF-8 text ({error})") from error


def _spelled(symbols: np.ndarray, words: bool) -> str:
    """A LibriSpeech HW4P2 transcript: characters within ``<sos>``/``<eos>``, or words."""
    inner = symbols.tolist()
    inner = inner[inner[:1] == ["<sos>"] : len(inner) - (inner[-1:] == ["<eos>"])]
    return (" " if words else "").join(inner)


def _characters(
    fmt: str, names: list[str], sentences: list[str], width: int, inventory: Inventory | None
) -> tuple[list[np.ndarray], Inventory]:
    """Class indices of each sentence's characters, in the inventory's order (training: the
    sorted characters found), and that inventory."""
    for name, sentence in zip(names, sentences, strict=True):
        if not sentence:
            raise UserInputError(f"{name}: empty transcript (no character to spell)")
    chars = [np.array(list(sentence)) for sentence in sentences]
    targets, found = librispeech_files.to_classes(names, chars, inventory)
    return targets, inventory or char_inventory(fmt, width, found)


def read_wsj(
    fmt: str, data_dir: Path, split: str, need_labels: bool, inventory: Inventory | None
) -> tuple[SequenceSplit, Inventory]:
    """One split of a WSJ folder (``wsj`` or ``wsj_chars``), and the inventory."""
    chars = fmt == "wsj_chars"
    names, layout = (CHAR_FILES, CHAR_LAYOUT) if chars else (WSJ_FILES, WSJ_LAYOUT)
    frames_path, labels_path = split_files(data_dir, split, need_labels, names, layout)
    frames = read_utterances(frames_path, "frames")
    if not frames:
        raise UserInputError(f"{frames_path}: holds no utterances")
    where = [f"{frames_path}: utterance {i}" for i in range(len(frames))]
    width = check_utterances(where, frames, inventory, "the first utterance")
    if labels_path is None:
        known = inventory or (char_inventory(fmt, width, ()) if chars else wsj_inventory(width))
        return SequenceSplit(frames, None, where, width), known
    targets = list(read_array(labels_path)) if chars else read_utterances(labels_path, "labels")
    if len(targets) != len(frames):
        raise UserInputError(
            f"{labels_path}: {len(targets)} {'transcripts' if chars else 'label sequences'} but "
            f"{frames_path} has {len(frames)} utterances"
        )
    label_names = [f"{labels_path}: utterance {i}" for i in range(len(targets))]
    if chars:
        sentences = [_sentence(n, t) for n, t in zip(label_names, targets, strict=True)]
        targets, inventory = _characters(fmt, label_names, sentences, width, inventory)
        return SequenceSplit(frames, targets, where, width), inventory
    n = len(phoneme_codes.WSJ_PHONEMES)
    for name, seq in zip(label_names, targets, strict=True):
        _check_sequence(name, seq, n)
    targets = [t.astype(np.int64) for t in targets]
    return SequenceSplit(frames, targets, where, width), inventory or wsj_inventory(width)


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
    fmt: str, data_dir: Path, split: str, need_labels: bool, inventory: Inventory | None
) -> tuple[SequenceSplit, Inventory]:
    """One partition, and the inventory (the given one, or the training partition's)."""
    chars = fmt == "librispeech_chars"
    mfcc, transcripts = librispeech_files.partition_files(data_dir, split, need_labels, chars)
    frames = [read_array(p) for p in mfcc]
    if mfcc[0].parent.name == "fbank":  # (F, T)
        frames = [f.T if f.ndim == 2 else f for f in frames]
    where = [str(p) for p in mfcc]
    width = check_utterances(where, frames, inventory, "the first utterance")
    if transcripts is None:
        empty = char_inventory(fmt, width, ()) if chars else librispeech_inventory(width, (), "")
        inventory = inventory or empty
        return SequenceSplit(frames, None, where, width), inventory
    if chars:
        symbols = [librispeech_files.read_symbols(p) for p in transcripts]
        words = transcripts[0].parent.name == "text"  # 2024 on: words, not characters
        sentences = [_spelled(s, words) for s in symbols]
        names = [str(p) for p in transcripts]
        targets, inventory = _characters(fmt, names, sentences, width, inventory)
        return SequenceSplit(frames, targets, where, width), inventory
    symbols = [_symbols_of(p) for p in transcripts]
    targets, found = librispeech_files.to_classes(transcripts, symbols, inventory)
    inventory = inventory or librispeech_inventory(width, found, str(transcripts[0].parent))
    return SequenceSplit(frames, targets, where, width), inventory


def read_split(
    fmt: str, data_dir: str | Path, split: str, need_labels: bool,
    inventory: Inventory | None,
) -> tuple[SequenceSplit, Inventory]:  # fmt: skip
    """Read ``split`` of a folder in layout ``fmt``; the inventory comes back with it."""
    if fmt not in FORMATS:
        raise UserInputError(f"unknown utterance layout {fmt!r}; expected one of {FORMATS}")
    read = read_wsj if fmt.startswith("wsj") else read_librispeech
    return read(fmt, Path(data_dir), split, need_labels, inventory)


def has_split(fmt: str, data_dir: str | Path, split: str) -> tuple[bool, bool]:
    """(split present, split has labels) without reading it."""
    if fmt.startswith("wsj"):
        files = CHAR_FILES if fmt == "wsj_chars" else WSJ_FILES
        names = [name.format(split) for name in files.split()]
    else:
        folders = librispeech_files.folders(Path(data_dir), split, fmt == "librispeech_chars")
        names = [f"{librispeech_files.PARTITIONS[split]}/{kind}" for kind in folders]
    present, labelled = (Path(data_dir, name).exists() for name in names)
    return present, labelled
