"""Context windows gathered on the host from a memory-mapped cache entry: one vectorised gather
a batch, (B, 2k+1) indices over the (N, D) map, whose pages DataLoader workers share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, RandomSampler

from data_modules.batches.index_order import CHUNK, in_chunks, index_dtype
from data_modules.errors import UserInputError
from data_modules.speech.frames.cache import CacheEntry, inverse_std


def gather_windows(
    frames: np.ndarray,
    offsets: np.ndarray,
    frame_ids: np.ndarray,
    k: int,
    pad: str = "zero",
    mean: np.ndarray | None = None,
    inv_std: np.ndarray | None = None,
) -> np.ndarray:
    """Context windows (B, 2k+1, D) float32 of ``frame_ids`` in one fancy-index of ``frames``;
    outside its utterance a window repeats the edge frame (``edge``) or is zeroed after
    normalisation (``zero``)."""
    utt = np.searchsorted(offsets, frame_ids, side="right") - 1
    start = offsets[utt][:, None]
    end = offsets[utt + 1][:, None]
    idx = frame_ids[:, None] + np.arange(-k, k + 1)
    x = np.asarray(frames[np.clip(idx, start, end - 1)]).astype(np.float32, copy=False)
    if mean is not None:
        x -= mean
        x *= inv_std
    if pad == "zero" and k > 0:
        x[(idx < start) | (idx >= end)] = 0.0
    return x


class WindowDataset(Dataset):
    """A cache entry's frames as context windows, gathered a batch at a time (``__getitems__``:
    ``(x,)`` or ``(x, y)``, x float32 ``(B, 2k+1, D)``); host and device copies alike."""

    def __init__(
        self,
        entry: CacheEntry,
        context: int,
        pad: str,
        with_labels: bool,
        global_stats: tuple[np.ndarray, np.ndarray] | None = None,
        device: torch.device | None = None,
    ) -> None:
        if with_labels and not entry.has_labels:
            raise UserInputError(f"{entry.path}: split has no labels")
        self.entry, self.context, self.pad, self.with_labels = entry, context, pad, with_labels
        self.device = None if device is None else torch.device(device)
        self._load(global_stats)
        self.set_global_stats(global_stats)

    @staticmethod
    def _stats(stats: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray | None, ...]:
        """(mean, 1 / std) per band as float32, or (None, None): frames as cached."""
        if stats is None:
            return None, None
        return np.asarray(stats[0], np.float32), inverse_std(stats[1])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[0] for t in self.__getitems__([index]))


class ContextWindowDataset(WindowDataset):
    """Frames of one cache entry, gathered from its memory map on the host."""

    def _load(self, stats: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.offsets = self.entry.offsets()
        self._frames: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def set_global_stats(self, stats: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Normalise with (mean, var) per band in the gather; None: frames as cached."""
        self.mean, self.inv_std = self._stats(stats)

    def __getstate__(self) -> dict[str, Any]:
        # Workers re-open the map themselves: pickling must never copy the frames.
        return {**self.__dict__, "_frames": None, "_labels": None}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        if self._frames is None:
            self._frames = self.entry.open_frames()
            self._labels = self.entry.open_labels() if self.with_labels else None
        ids = np.asarray(indices, dtype=np.int64)
        x = gather_windows(
            self._frames, self.offsets, ids, self.context, self.pad, self.mean, self.inv_std
        )
        x = torch.from_numpy(x)
        if not self.with_labels:
            return (x,)
        return x, torch.from_numpy(self._labels[ids].astype(np.int64))


class ChunkedRandomSampler(RandomSampler):
    """RandomSampler whose permutation stays one int32 tensor (4 bytes a frame, not a list's ~36),
    seeded from torch's global RNG; a RandomSampler, so Lightning knows the loader shuffles."""

    uniform_permutation = True  # nothing more: exact resume may swap in its seeded equivalent

    def __init__(self, data_source: Sized, chunk: int = CHUNK) -> None:
        super().__init__(data_source)
        self.chunk = chunk

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        gen = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_()))
        perm = torch.randperm(n, generator=gen, dtype=index_dtype(n))
        return in_chunks(perm, self.chunk)
