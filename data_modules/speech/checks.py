"""What every speech reader returns and checks, frames (HW1P2) and sequences (HW3P2) alike: the
:class:`Inventory` the checkpoint keeps, and checks that name the file (and utterance)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_modules.errors import InputFileNotFoundError, UserInputError

MAX_CLASSES = 1 << 16  # labels are cached as uint8 or uint16


def window_frames(context: int) -> int:
    """Frames in one input window: the frame itself and ``context`` frames on each side."""
    return 2 * int(context) + 1


@dataclass(frozen=True)
class Inventory:
    """Feature dimension and classes of a dataset. ``symbols`` names classes 0..C-1 when labels
    are symbols (None: integer labels); ``codes`` are their one-character codes (sequences)."""

    format: str
    feature_dim: int
    num_classes: int
    symbols: tuple[str, ...] | None = None
    codes: tuple[str, ...] | None = None

    def to_state(self) -> dict[str, Any]:
        """Plain containers only: a checkpoint must load with ``torch.load(weights_only=True)``."""
        state = {k: v for k, v in asdict(self).items() if v is not None}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in state.items()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Inventory:
        symbols, codes = state.get("symbols"), state.get("codes")
        return cls(
            str(state["format"]),
            int(state["feature_dim"]),
            int(state.get("num_classes", len(symbols or ()))),
            tuple(str(s) for s in symbols) if symbols is not None else None,
            tuple(str(c) for c in codes) if codes is not None else None,
        )

    @property
    def unit(self) -> str:
        """What a class is: a character spells itself; a phoneme has a one-character code."""
        return "characters" if self.codes is not None and self.codes == self.symbols else "phonemes"

    def describe(self) -> str:
        sequences = self.codes is not None
        what = "utterances" if sequences else "frames"
        classes = f"{self.num_classes} {self.unit if sequences else 'classes'}"
        if self.symbols is not None:
            shown = ", ".join(self.symbols[:4]) + (", ..." if len(self.symbols) > 4 else "")
            classes += f" ({shown})"
        return f"{self.format} {what} of {self.feature_dim} features, {classes}"


def present(folder: Path, names: Sequence[str]) -> list[str]:
    """Those of ``names`` (files or folders) that ``folder`` holds."""
    return [name for name in names if (folder / name).exists()]


def folder_contents(folder: Path) -> str:
    """What ``folder`` holds, for a message about a file missing from it."""
    if not folder.is_dir():
        return "the folder does not exist"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(n for n in names if not n.startswith(".")) or "nothing"


def layout_of(
    data_dir: str | Path, markers: Callable[[Path], dict[str, list[str]]]
) -> tuple[str, list[str]] | None:
    """(layout, what identified it) for a folder holding exactly one layout; else None."""
    found = _found(Path(data_dir), markers)
    return next(iter(found.items())) if len(found) == 1 else None


def _found(data_dir: Path, markers: Callable[[Path], dict[str, list[str]]]) -> dict:
    """The layouts of which ``data_dir`` holds marker files, and those files."""
    found = markers(data_dir) if data_dir.is_dir() else {}
    return {name: files for name, files in found.items() if files}


def detect_format(
    data_dir: str | Path, markers: Callable[[Path], dict[str, list[str]]], kind: str,
    expected: str, foreign: dict[str, str],
) -> tuple[str, list[str]]:  # fmt: skip
    """The layout ``source: auto`` reads in ``data_dir`` (``markers``: each layout's files found
    there), and the files that told it; a layout of another task (``foreign``: which) is refused."""
    data_dir = Path(data_dir)
    found = _found(data_dir, markers)
    own = {name: files for name, files in found.items() if name not in foreign}
    if found and not own:
        name, files = next(iter(found.items()))
        raise UserInputError(
            f"{data_dir}: holds {', '.join(files)}, the {name} layout: {foreign[name]}, not "
            f"{kind} data"
        )
    if len(own) == 1:
        return next(iter(own.items()))
    if own:
        listed = "; ".join(f"{name} ({', '.join(m)})" for name, m in own.items())
        raise UserInputError(
            f"{data_dir}: holds files of several layouts: {listed}; choose one with "
            f"--data.source {' or '.join(own)}"
        )
    raise InputFileNotFoundError(
        f"{data_dir}: no {kind} data found (source: auto). Expected one of: {expected}"
    )


@dataclass
class SplitData:
    """A validated split: frames and class labels (None for an unlabelled split)."""

    frames: list[np.ndarray]
    labels: list[np.ndarray] | None
    feature_dim: int
    num_classes: int | None = None  # 1 + the largest class seen, or the inventory's count
    symbols: tuple[str, ...] | None = None  # the symbol order the labels were mapped with


def frame_width(where: str, utt: Any) -> int:
    """The feature dimension of a first utterance, checked to be a 2-D numeric array."""
    if not isinstance(utt, np.ndarray) or utt.ndim != 2:
        shape = getattr(utt, "shape", None)
        raise UserInputError(f"{where} has shape {shape}, expected (T, D) frames")
    return int(utt.shape[1])


def check_frames(where: str, utt: np.ndarray, width: int, width_from: str) -> None:
    """Raise unless ``utt`` is a finite numeric ``(T > 0, width)`` array."""
    if utt.ndim != 2 or utt.shape[1] != width:
        raise UserInputError(
            f"{where} has shape {utt.shape}, expected (T, {width}) as {width_from}"
        )
    if utt.shape[0] == 0:
        raise UserInputError(f"{where} is empty (0 frames)")
    if not np.issubdtype(utt.dtype, np.floating) and not np.issubdtype(utt.dtype, np.integer):
        raise UserInputError(f"{where} has dtype {utt.dtype}, expected float")
    if not np.isfinite(utt).all():
        bad = int(np.flatnonzero(~np.isfinite(utt).all(axis=1))[0])
        raise UserInputError(f"{where} has NaN/inf values (first at frame {bad})")


def check_labels(
    where: str, lab: np.ndarray, n_frames: int, num_classes: int | None, classes_from: str
) -> None:
    """Raise unless ``lab`` is ``(n_frames,)`` integers in 0..num_classes-1 (None: any >= 0)."""
    if lab.ndim != 1 or len(lab) != n_frames:
        raise UserInputError(
            f"{where} has labels of shape {lab.shape}, expected ({n_frames},) to match its frames"
        )
    if not np.issubdtype(lab.dtype, np.integer):
        raise UserInputError(f"{where} has label dtype {lab.dtype}, expected integers")
    high = MAX_CLASSES if num_classes is None else num_classes
    out = (lab < 0) | (lab >= high)
    if out.any():
        bad = int(np.flatnonzero(out)[0])
        expected = f"0..{high - 1}" + ("" if num_classes is None else f" ({classes_from})")
        raise UserInputError(f"{where} frame {bad} has label {int(lab[bad])}, expected {expected}")


def symbols_to_classes(
    where: str, symbols: np.ndarray, index: dict[str, int], classes_from: str
) -> np.ndarray:
    """Class indices of an array of symbols; an unknown symbol is named with its position."""
    try:
        return np.fromiter((index[str(s)] for s in symbols), dtype=np.int64, count=len(symbols))
    except KeyError as error:
        position = next(i for i, s in enumerate(symbols) if str(s) not in index)
        raise UserInputError(
            f"{where} has symbol {error.args[0]!r} at position {position}, which is not in "
            f"the inventory ({classes_from}: {len(index)} symbols)"
        ) from None


def largest_class(labels: Sequence[np.ndarray]) -> int:
    return max((int(lab.max()) for lab in labels if len(lab)), default=-1)


def check_utterances(
    names: Sequence[str], frames: Sequence[np.ndarray], inventory: Inventory | None, first: str
) -> int:
    """The width D all ``frames`` share, each checked (:func:`check_frames`): the inventory's
    (dev, prediction) or else the first utterance's (training), which ``first`` names."""
    width, width_from = (inventory.feature_dim, "the training data") if inventory else (None, "")
    for name, utt in zip(names, frames, strict=True):
        if width is None:
            width, width_from = frame_width(name, utt), first
        check_frames(name, utt, width, width_from)
    return width


def read_frame_files(
    paths: Sequence[Path], read: Callable[[Path], np.ndarray], inventory: Inventory | None
) -> tuple[list[np.ndarray], int]:
    """Each file's ``(T, D)`` frames, read with ``read``, all of one width D."""
    frames = [read(path) for path in paths]
    first = f"{paths[0].name}, the first file" if paths else ""
    return frames, check_utterances([str(p) for p in paths], frames, inventory, first)
