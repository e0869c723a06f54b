"""What every frame-classification reader returns, and the checks every one of them applies.

Whatever the file layout (Kaggle WSJ object arrays, LibriSpeech ``mfcc/*.npy``, libriphone
``feat/*.pt``), a split becomes a :class:`SplitData`: one finite ``(T, D)`` float array and one
``(T,)`` array of class indices per utterance. The feature dimension ``D`` and the classes come
from the data (the training split, or a demo corpus's manifest) and travel as an
:class:`Inventory`, which the DataModule keeps in its checkpoint state so that prediction maps
classes back to the labels the competition expects. Every check names the file (and the
utterance or frame) and what was expected, as one :class:`~data_modules.errors.UserInputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_modules.errors import UserInputError

MAX_CLASSES = 1 << 16  # labels are cached as uint8 or uint16


def window_frames(context: int) -> int:
    """Frames in one input window: the frame itself and ``context`` frames on each side."""
    return 2 * int(context) + 1


@dataclass(frozen=True)
class Inventory:
    """Feature dimension and classes of a dataset; ``symbols`` names classes 0..C-1 in order
    when the labels are symbols (LibriSpeech phonemes), and is None for integer labels."""

    format: str
    feature_dim: int
    num_classes: int
    symbols: tuple[str, ...] | None = None

    def to_state(self) -> dict[str, Any]:
        """Plain containers only: a checkpoint must load with ``torch.load(weights_only=True)``."""
        state: dict[str, Any] = {
            "format": self.format,
            "feature_dim": self.feature_dim,
            "num_classes": self.num_classes,
        }
        if self.symbols is not None:
            state["symbols"] = list(self.symbols)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Inventory:
        symbols = state.get("symbols")
        return cls(
            format=str(state["format"]),
            feature_dim=int(state["feature_dim"]),
            num_classes=int(state["num_classes"]),
            symbols=tuple(str(s) for s in symbols) if symbols is not None else None,
        )

    def describe(self) -> str:
        classes = f"{self.num_classes} classes"
        if self.symbols is not None:
            shown = ", ".join(self.symbols[:4]) + (", ..." if len(self.symbols) > 4 else "")
            classes += f" ({shown})"
        return f"{self.format} frames of {self.feature_dim} features, {classes}"


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
    """Raise unless ``utt`` is a finite numeric ``(T > 0, width)`` array.

    ``where`` names the file (and utterance); ``width_from`` says where ``width`` came from.
    """
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
        expected = (
            f"0..{num_classes - 1} ({classes_from})"
            if num_classes is not None
            else f"0..{MAX_CLASSES - 1}"
        )
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


def inventory_width(inventory: Inventory | None) -> tuple[int | None, str]:
    """(feature dimension to expect, where it came from) for a split read with ``inventory``."""
    if inventory is None:
        return None, ""
    return inventory.feature_dim, "the training data"


def largest_class(labels: Sequence[np.ndarray]) -> int:
    return max((int(lab.max()) for lab in labels if len(lab)), default=-1)


def read_frame_files(
    paths: Sequence[Path], read: Callable[[Path], np.ndarray], inventory: Inventory | None
) -> tuple[list[np.ndarray], int | None]:
    """Each file's ``(T, D)`` frames, read with ``read``, all of one width D: the inventory's
    (prediction, dev) or else the first file's (training); a file that differs is named."""
    width, width_from = inventory_width(inventory)
    frames = []
    for path in paths:
        utt = read(path)
        if width is None:
            width, width_from = frame_width(str(path), utt), f"{path.name}, the first file"
        check_frames(str(path), utt, width, width_from)
        frames.append(utt)
    return frames, width
