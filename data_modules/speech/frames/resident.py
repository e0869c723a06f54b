"""Frames held on the training device, context windows gathered there: no workers, no copies.
Each utterance is copied once with ``k`` padding rows around it, so a window is ``2k+1``
consecutive rows of a strided view and a batch one ``index_select``. Zero padding under
``global`` normalisation holds NaN, then set to 0: the memory map's numbers, bit for bit."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from data_modules.batches.batched import index_batch
from data_modules.speech.checks import window_frames
from data_modules.speech.frames.cache import CacheEntry
from data_modules.speech.frames.memmap import WindowDataset

RESIDENT_FRACTION = 0.5  # of the free memory a resident copy may take when chosen automatically
_COPY_ROWS = 1 << 20  # frames copied to a device at a time (40 MB of float32 x 40)


def padded_rows(n_frames: int, n_utterances: int, context: int, pad: str) -> int:
    """Rows of the padded device layout (see the module docstring)."""
    gaps = n_utterances + 1 if pad == "zero" else 2 * n_utterances
    return n_frames + gaps * context


def entry_bytes(entry: CacheEntry, context: int, pad: str, with_labels: bool) -> int:
    """Bytes a resident copy of ``entry`` takes on the device."""
    meta = entry.meta
    n, utterances = meta["n_frames"], meta["n_utterances"]
    width = meta.get("feature_dim", 40)
    itemsize = np.dtype(meta.get("settings", {}).get("dtype", "float32")).itemsize
    labels = n * meta.get("label_bytes", 1) if with_labels else 0
    return padded_rows(n, utterances, context, pad) * width * itemsize + labels + 8 * utterances


def _host_available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def resident_budget(device: torch.device, processes_on_host: int = 1) -> int:
    """Bytes that ``resident: auto`` may place on ``device`` now (0: never automatically)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(RESIDENT_FRACTION * free)
    if device.type != "cpu" or (available := _host_available_bytes()) is None:
        return 0
    return int(RESIDENT_FRACTION * available / max(1, processes_on_host))


def padded_sources(offsets: np.ndarray, context: int, pad: str) -> np.ndarray:
    """For each row of the padded layout, the frame it copies, or -1 for a padding row."""
    n, utterances, k = int(offsets[-1]), len(offsets) - 1, context
    lengths = np.diff(offsets)
    utterance = np.repeat(np.arange(utterances, dtype=np.int64), lengths)
    step = k if pad == "zero" else 2 * k  # padding rows before each utterance's windows
    sources = np.full(padded_rows(n, utterances, k, pad), -1, dtype=np.int64)
    sources[np.arange(n) + utterance * step + k] = np.arange(n)
    if pad == "edge" and k > 0:
        first_rows = offsets[:-1] + step * np.arange(utterances)  # k copies of the first frame
        after_rows = offsets[1:] + step * np.arange(utterances) + k  # ... and of the last
        sources[(first_rows[:, None] + np.arange(k)).ravel()] = np.repeat(offsets[:-1], k)
        sources[(after_rows[:, None] + np.arange(k)).ravel()] = np.repeat(offsets[1:] - 1, k)
    return sources


def padded_to_device(
    frames: np.ndarray, sources: np.ndarray, fill: float, device: torch.device
) -> torch.Tensor:
    """``frames[sources]`` (``fill`` where a source is -1) on ``device``, built in chunks."""
    dtype = torch.from_numpy(np.empty(0, frames.dtype)).dtype
    out = torch.empty((len(sources), frames.shape[1]), dtype=dtype, device=device)
    for start in range(0, len(sources), _COPY_ROWS):
        rows = sources[start : start + _COPY_ROWS]
        block = np.asarray(frames[np.maximum(rows, 0)])  # from the map into RAM, then over
        block[rows < 0] = fill
        out[start : start + len(rows)].copy_(torch.from_numpy(block))
    return out


class ResidentWindowDataset(WindowDataset):
    """A cache entry's frames on ``device``; batches are gathered there, on ``device``."""

    def _load(self, stats: tuple[np.ndarray, np.ndarray] | None) -> None:
        offsets = self.entry.offsets()
        self.n_frames = int(offsets[-1])
        self._nan_padding = self.pad == "zero" and stats is not None
        self._build(offsets, np.nan if self._nan_padding else 0.0)
        self.labels = None
        if self.with_labels:  # uint8 as cached; uint16 (past 256 classes) as int32: any op takes it
            labels = np.array(self.entry.open_labels())
            labels = labels if labels.dtype == np.uint8 else labels.astype(np.int32)
            self.labels = torch.from_numpy(labels).to(self.device)

    def _build(self, offsets: np.ndarray, fill: float) -> None:
        sources = padded_sources(offsets, self.context, self.pad)
        self.frames = padded_to_device(self.entry.open_frames(), sources, fill, self.device)
        self._fill = fill
        self.offsets = torch.from_numpy(offsets).to(self.device)
        rows, width = self.frames.shape
        size = window_frames(self.context)
        # windows[r] = frames[r : r + 2k + 1]: overlapping rows, nothing copied
        self.windows = self.frames.as_strided((rows - size + 1, size, width), (width, width, 1))
        self.step = self.context if self.pad == "zero" else 2 * self.context

    def set_global_stats(self, stats: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Normalise with (mean, var) per band in the gather; None: frames as cached."""
        nan_padding = self.pad == "zero" and stats is not None
        if nan_padding != self._nan_padding:  # stats arrived after the copy: new padding rows
            self._nan_padding = nan_padding
            self._build(self.entry.offsets(), np.nan if nan_padding else 0.0)
        self.mean, self.inv_std = (
            None if v is None else torch.from_numpy(v).to(self.device) for v in self._stats(stats)
        )

    def __len__(self) -> int:
        return self.n_frames

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """Windows ``(B, 2k+1, D)`` float32 of the frames ``ids`` (a tensor on the device)."""
        utterance = torch.searchsorted(self.offsets, ids, right=True) - 1
        x = self.windows.index_select(0, ids + utterance * self.step).float()
        if self.mean is not None:
            x = (x - self.mean) * self.inv_std
            if self._nan_padding:
                x = x.nan_to_num_(nan=0.0)
        return x

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        ids = index_batch(indices, self.device)
        x = self.gather(ids)
        if self.labels is None:
            return (x,)
        return x, self.labels.index_select(0, ids).long()
