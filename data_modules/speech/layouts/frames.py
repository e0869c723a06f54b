"""The frame-classification layouts one DataModule reads (``kaggle``, ``librispeech``,
``libriphone``), and how a folder's layout is found. Each gives a :class:`SplitSource` per split:
its files (the cache key) and a reader; frames come in submission order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from data_modules.errors import UserInputError
from data_modules.speech import checks
from data_modules.speech.checks import Inventory, SplitData
from data_modules.speech.layouts import libriphone as libriphone_files
from data_modules.speech.layouts import librispeech as librispeech_files
from data_modules.speech.layouts import wsj as wsj_files

FORMATS = ("kaggle", "librispeech", "libriphone")
COURSES = {
    "kaggle": "CMU 11-785 HW1P2, Fall 2019 (WSJ, Kaggle)",
    "librispeech": "CMU 11-785 HW1P2, 2021 on (LibriSpeech)",
    "libriphone": "NTU ML2022 Spring HW2 (libriphone)",
}
SUBMISSION_HEADER = {"kaggle": "id,label", "librispeech": "id,label", "libriphone": "Id,Class"}
READER = "data_modules.speech.sequences.datamodule.UtteranceSequencesDataModule"
FOREIGN = {  # layouts of another task that share files with these
    name: f"{READER} reads these transcripts (source: {name})"
    for name in ("wsj_chars", "librispeech_chars")
}


@dataclass(frozen=True)
class SplitSource:
    """Where one split of one layout comes from, and how to read it."""

    format: str
    split: str
    files: tuple[Path, ...]  # everything the split is read from: the cache key's sources
    has_labels: bool
    read: Callable[[Inventory | None], SplitData] = field(compare=False)
    options: dict[str, Any] = field(default_factory=dict)  # settings that change what is read
    where: str = ""  # the file or folder named in messages


def markers(data_dir: Path) -> dict[str, list[str]]:
    """For each layout, the marker files or folders of it that ``data_dir`` holds."""
    split_lists = ("feat/train", "feat/test", "train_split.txt", "test_split.txt")
    libriphone = checks.present(data_dir, split_lists)
    return {
        **wsj_files.markers(data_dir),
        **librispeech_files.markers(data_dir),
        "libriphone": libriphone if len(libriphone) > 1 else [],  # a lone split list is none
    }


def detect_format(data_dir: str | Path) -> tuple[str, list[str]]:
    """The layout ``source: auto`` reads in ``data_dir``, and the files that told it."""
    expected = (
        f"kaggle ({wsj_files.KAGGLE_FILES}); librispeech ({librispeech_files.LAYOUT}); "
        f"libriphone ({libriphone_files.LAYOUT})"
    )
    return checks.detect_format(data_dir, markers, "frame-classification", expected, FOREIGN)


def split_source(
    fmt: str,
    data_dir: str | Path,
    split: str,
    need_labels: bool,
    val_fraction: float = 0.1,
    split_seed: int = 0,
) -> SplitSource:
    """The :class:`SplitSource` of ``split`` in a folder of layout ``fmt``."""
    data_dir = Path(data_dir)
    if fmt == "kaggle":
        frames, labels = wsj_files.split_files(data_dir, split, need_labels)
        files = (frames,) if labels is None else (frames, labels)
        dev_labels = data_dir / "dev_labels.npy"  # the classes are train's and dev's
        if split == "train" and labels is not None and dev_labels.is_file():
            files += (dev_labels,)
        else:
            dev_labels = None
        read = partial(wsj_files.read_split, frames, labels, dev_labels=dev_labels)
        return SplitSource(fmt, split, files, labels is not None, read, where=str(frames))
    if fmt == "librispeech":
        mfcc, transcripts = librispeech_files.partition_files(data_dir, split, need_labels)
        files = tuple(mfcc) + tuple(transcripts or ())
        read = partial(librispeech_files.read_split, mfcc, transcripts)
        where = str(data_dir / librispeech_files.PARTITIONS[split])
        return SplitSource(fmt, split, files, transcripts is not None, read, where=where)
    if fmt == "libriphone":
        ids = libriphone_files.split_ids(data_dir, split, val_fraction, split_seed)
        paths = libriphone_files.feature_files(data_dir, split, ids)
        labels_path = libriphone_files.labels_file(data_dir, split, need_labels)
        lists = (data_dir / libriphone_files.SPLIT_LISTS[split],)
        files = lists + tuple(paths) + ((labels_path,) if labels_path else ())
        read = partial(libriphone_files.read_split, paths, ids, labels_path)
        options = {} if split == "test" else dict(val_fraction=val_fraction, split_seed=split_seed)
        where = str(data_dir / libriphone_files.FEATURE_DIRS[split])
        return SplitSource(fmt, split, files, labels_path is not None, read, options, where)
    raise UserInputError(f"unknown frame layout {fmt!r}; expected one of {FORMATS}")
