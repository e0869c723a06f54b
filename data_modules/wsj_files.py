"""Safe reading and validation of the Kaggle WSJ ``.npy`` files.

The Kaggle files are object arrays, i.e. pickles inside ``.npy``. ``np.load(allow_pickle=True)``
would execute whatever a downloaded file's pickle says, so we parse the ``.npy`` header with
``numpy.lib.format`` and unpickle the payload with an unpickler that can only reach the handful of
numpy callables needed to rebuild arrays. Anything else is refused before it is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_modules.safe_pickle import UnsafePickleError, safe_load
from lightning_dl.errors import InputFileNotFoundError, UserInputError

N_FEATURES = 40
N_CLASSES = 138


# what one utterance of a frames or labels file is, and its number of dimensions
UTTERANCE_KINDS = {"frames": ("(T, D) frames", 2), "labels": ("(T,) labels", 1)}


def _read_header(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:  # 3.0 only differs by a utf-8 header; numpy has no public reader for it
        shape, _fortran, dtype = np.lib.format._read_array_header(f, version)
    return shape, dtype


def read_utterances(path: str | Path, kind: str = "frames") -> list[np.ndarray]:
    """Read a WSJ ``.npy`` file into a list of per-utterance arrays, never trusting its pickle.

    Object arrays go through the numpy-only unpickler; plain numeric arrays are read with
    ``allow_pickle=False`` and split along their first axis when they stack equal-length
    utterances. ``kind`` ("frames" or "labels") says what one utterance holds; a plain array
    with the dimensions of one utterance (all frames in one (N, 40) array) is refused with a
    message saying what the file must be.
    """
    path = Path(path)
    item, item_ndim = UTTERANCE_KINDS[kind]
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: file not found")
    with open(path, "rb") as f:
        try:
            shape, dtype = _read_header(f)
        except ValueError as e:
            raise UserInputError(f"{path}: not a valid .npy file ({e})") from e
        if not dtype.hasobject:
            if len(shape) != item_ndim + 1:
                raise UserInputError(
                    f"{path}: holds one plain {dtype} array of shape {shape}, not utterances: "
                    f"it must be a numpy object array of utterances, each an array of {item} "
                    "(as the Kaggle files are), or one stacked (utterances, ...) array"
                )
            f.seek(0)
            try:
                arr = np.load(f, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise UserInputError(f"{path}: not a readable .npy file ({e})") from e
            return list(arr)
        try:
            obj = safe_load(f, str(path))
        except UnsafePickleError:
            raise
        except Exception as e:  # truncated or corrupt pickle
            raise UserInputError(f"{path}: cannot read pickled object array ({e})") from e
    if not isinstance(obj, np.ndarray) or obj.shape != shape:
        raise UserInputError(f"{path}: payload is not an array of shape {shape} as the header says")
    out = []
    for i, utt in enumerate(obj.reshape(-1)):
        if not isinstance(utt, np.ndarray) or utt.dtype.hasobject:
            raise UserInputError(
                f"{path}: utterance {i} is {type(utt).__name__}, expected a numeric ndarray "
                f"of {item}"
            )
        out.append(utt)
    return out


def check_frames(path: Path, i: int, utt: np.ndarray) -> None:
    """Raise UserInputError naming file and utterance unless ``utt`` is finite (T>0, 40)."""
    if utt.ndim != 2 or utt.shape[1] != N_FEATURES:
        raise UserInputError(
            f"{path}: utterance {i} has shape {utt.shape}, expected (T, {N_FEATURES})"
        )
    if utt.shape[0] == 0:
        raise UserInputError(f"{path}: utterance {i} is empty (0 frames)")
    if not np.issubdtype(utt.dtype, np.floating) and not np.issubdtype(utt.dtype, np.integer):
        raise UserInputError(f"{path}: utterance {i} has dtype {utt.dtype}, expected float")
    if not np.isfinite(utt).all():
        bad = int(np.flatnonzero(~np.isfinite(utt).all(axis=1))[0])
        raise UserInputError(f"{path}: utterance {i} has NaN/inf values (first at frame {bad})")


def check_labels(path: Path, i: int, lab: np.ndarray, n_frames: int) -> None:
    """Raise UserInputError naming file and utterance unless ``lab`` is (n_frames,) in 0..137."""
    if lab.ndim != 1 or len(lab) != n_frames:
        raise UserInputError(
            f"{path}: utterance {i} has labels of shape {lab.shape}, expected "
            f"({n_frames},) to match its frames"
        )
    if not np.issubdtype(lab.dtype, np.integer):
        raise UserInputError(
            f"{path}: utterance {i} has label dtype {lab.dtype}, expected integers"
        )
    lo, hi = int(lab.min()), int(lab.max())
    if lo < 0 or hi >= N_CLASSES:
        bad = int(np.flatnonzero((lab < 0) | (lab >= N_CLASSES))[0])
        raise UserInputError(
            f"{path}: utterance {i} frame {bad} has label {int(lab[bad])}, expected "
            f"0..{N_CLASSES - 1}"
        )


def split_files(data_dir: Path, split: str, need_labels: bool) -> tuple[Path, Path | None]:
    """The frames file and labels file (None if absent and not needed) of ``split``."""
    frames = data_dir / f"{split}.npy"
    labels = data_dir / f"{split}_labels.npy"
    for p in (frames, labels) if need_labels else (frames,):
        if not p.is_file():
            found = sorted(q.name for q in data_dir.glob("*.npy")) if data_dir.is_dir() else []
            raise InputFileNotFoundError(
                f"{p}: missing. Expected in {data_dir}: train.npy, train_labels.npy, dev.npy, "
                f"dev_labels.npy, test.npy (found: {', '.join(found) or 'nothing'})"
            )
    return frames, (labels if labels.is_file() else None)


def read_split(frames_path: Path, labels_path: Path | None) -> tuple[list, list | None]:
    """Read and validate one split: utterances, and labels when given."""
    utts = read_utterances(frames_path)
    for i, u in enumerate(utts):
        check_frames(frames_path, i, u)
    if labels_path is None:
        return utts, None
    labs = read_utterances(labels_path, "labels")
    if len(labs) != len(utts):
        raise UserInputError(
            f"{labels_path}: {len(labs)} label arrays but {frames_path} has {len(utts)} utterances"
        )
    for i, (u, lab) in enumerate(zip(utts, labs, strict=True)):
        check_labels(labels_path, i, lab, len(u))
    return utts, labs
