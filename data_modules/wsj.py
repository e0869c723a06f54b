"""WSJ frame classification (CMU 11-785 HW1P2, Kaggle): context windows over a memory-mapped cache.

Each sample is a frame plus ``context`` frames on each side, a ``(2k+1, 40)`` window. Windows are
never materialised: a batch is one vectorised gather over the (N, 40) frames with an index
matrix (B, 2k+1), so memory stays O(N x 40) whatever k is. The frames are either a memory map
gathered on the host (DataLoader workers share its pages) or, with ``resident``, a copy on the
training device gathered there (:mod:`data_modules.resident_frames`); both give the same batches.

Splits: ``fit`` trains on train and validates on dev. Kaggle's test.npy has no labels, so
``trainer.test`` runs on dev unless ``test_labels.npy`` exists (the demo corpus writes one);
``predict`` yields ``(x,)`` over test.npy in file order, as a submission needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from data_modules.batched import passthrough_collate
from data_modules.index_order import CHUNK, in_chunks, index_dtype
from data_modules.resident_frames import ResidentWindowDataset, entry_bytes, resident_budget
from data_modules.wsj_cache import CacheEntry, build_or_load
from data_modules.wsj_files import N_CLASSES, N_FEATURES
from lightning_dl.errors import UserInputError

_EPS = 1e-6


def gather_windows(
    frames: np.ndarray,
    offsets: np.ndarray,
    frame_ids: np.ndarray,
    k: int,
    pad: str = "zero",
    mean: np.ndarray | None = None,
    inv_std: np.ndarray | None = None,
) -> np.ndarray:
    """Context windows (B, 2k+1, 40) float32 of ``frame_ids`` in one fancy-index of ``frames``.

    Indices outside a frame's utterance are clamped to its first/last frame (``pad="edge"``) or
    gathered clamped and then zeroed (``pad="zero"``, after normalisation so padding stays 0).
    """
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


class ContextWindowDataset(Dataset):
    """Frames of one cache entry as flattened context windows, gathered a batch at a time."""

    def __init__(
        self,
        entry: CacheEntry,
        context: int,
        pad: str,
        with_labels: bool,
        global_stats: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        if with_labels and not entry.has_labels:
            raise UserInputError(f"{entry.path}: split has no labels")
        self.entry, self.context, self.pad, self.with_labels = entry, context, pad, with_labels
        self.offsets = entry.offsets()
        self.set_global_stats(global_stats)
        self._frames: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def set_global_stats(self, stats: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Normalise with (mean, var) per band in the gather; None: frames as cached."""
        self.mean, self.inv_std = (None, None)
        if stats is not None:
            self.mean = np.asarray(stats[0], np.float32)
            self.inv_std = (1.0 / np.sqrt(np.asarray(stats[1], np.float64) + _EPS)).astype(
                np.float32
            )

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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[0] for t in self.__getitems__([index]))


class ChunkedRandomSampler(RandomSampler):
    """RandomSampler whose permutation stays one int32 tensor, handed out in chunks.

    torch's RandomSampler turns the whole permutation into a Python list (~36 bytes a frame,
    about 650 MB for the Kaggle train set); this keeps 4 bytes a frame. Seeded from torch's
    global RNG like RandomSampler, so ``seed_everything`` makes it reproducible. Subclassing
    RandomSampler tells Lightning the loader shuffles (DDP then uses a shuffling sampler).
    """

    # Each epoch is a uniform random permutation, nothing more: exact resume may swap in its
    # seeded, resumable equivalent (lightning_dl.resumable_loader.make_resumable).
    uniform_permutation = True

    def __init__(self, data_source: Sized, chunk: int = CHUNK) -> None:
        super().__init__(data_source)
        self.chunk = chunk

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        gen = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_()))
        perm = torch.randperm(n, generator=gen, dtype=index_dtype(n))
        return in_chunks(perm, self.chunk)


class WSJFramesDataModule(pl.LightningDataModule):
    """Kaggle WSJ frames (or the generated eSpeak demo corpus) as context-window batches.

    ``normalize``: "none"; "utterance" (each utterance to zero mean / unit variance per band,
    baked into the cache); "global" (train mean/var, applied in the gather and saved in the
    checkpoint via ``state_dict`` so prediction uses the training statistics).

    ``resident``: ``true`` copies each split's frames, labels and offsets to the training device
    once and gathers batches there (no DataLoader workers, no per-batch copy of frames);
    ``false`` gathers from the memory map on the host, in ``num_workers`` processes; ``auto``
    chooses resident when a split fits comfortably (half the free device memory, or on the CPU
    half the available RAM shared by this machine's processes; see
    :func:`data_modules.resident_frames.resident_budget`). Under DDP each rank holds its copy.
    """

    def __init__(
        self,
        data_dir: str = "data/wsj",
        context: int = 12,
        batch_size: int = 1024,
        num_workers: int = 2,
        dtype: Literal["float32", "float16"] = "float32",
        normalize: Literal["none", "utterance", "global"] = "utterance",
        pad: Literal["zero", "edge"] = "zero",
        source: Literal["kaggle", "demo"] = "kaggle",
        cache_dir: str | None = None,
        demo_utterances: int = 2000,
        demo_seed: int = 0,
        demo_workers: int = 2,
        predict_split: Literal["test", "dev"] = "test",
        resident: bool | Literal["auto"] = "auto",
    ) -> None:
        super().__init__()
        if context < 0:
            raise UserInputError(f"context must be >= 0, got {context}")
        for name, value, allowed in (
            ("normalize", normalize, ("none", "utterance", "global")),
            ("pad", pad, ("zero", "edge")),
            ("source", source, ("kaggle", "demo")),
            ("dtype", dtype, ("float32", "float16")),
            ("predict_split", predict_split, ("test", "dev")),
            ("resident", resident, (True, False, "auto")),
        ):
            if value not in allowed:
                raise UserInputError(f"{name} must be one of {allowed}, got {value!r}")
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.num_classes = N_CLASSES
        self.input_shape = (2 * context + 1, N_FEATURES)
        self.global_stats: tuple[np.ndarray, np.ndarray] | None = None
        self.datasets: dict[str, ContextWindowDataset | ResidentWindowDataset] = {}

    # -- files and cache ------------------------------------------------------------------------
    def _entry(self, split: str, need_labels: bool) -> CacheEntry:
        return build_or_load(
            self.data_dir,
            split,
            cache_dir=self.hparams.cache_dir,
            dtype=self.hparams.dtype,
            utterance_norm=self.hparams.normalize == "utterance",
            need_labels=need_labels,
        )

    def _test_split(self) -> str:
        return "test" if (self.data_dir / "test_labels.npy").is_file() else "dev"

    def prepare_data(self) -> None:
        if self.hparams.source == "demo":
            # Cheap when the corpus on disk matches the request; a different request is refused
            # (FileExistsError) rather than silently training on the old corpus.
            from data_modules.demo_corpus import build_demo_corpus  # optional extra: lazy

            build_demo_corpus(
                self.data_dir,
                n_utterances=self.hparams.demo_utterances,
                seed=self.hparams.demo_seed,
                workers=self.hparams.demo_workers,
            )
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.state.fn == "predict":  # nothing but the split read
            self._entry(self.hparams.predict_split, need_labels=False)
            return
        for split in ("train", "dev"):
            self._entry(split, need_labels=True)
        if (self.data_dir / "test.npy").is_file():
            self._entry("test", need_labels=False)

    def _training_device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _resident_device(self, entry: CacheEntry, with_labels: bool) -> torch.device | None:
        """Where ``entry`` is held for gathering on the device, or None for the memory map."""
        mode = self.hparams.resident
        if mode is False:
            return None
        device = self._training_device()
        if mode is True:
            return device
        trainer = getattr(self, "trainer", None)
        processes = trainer.num_devices if trainer is not None and device.type == "cpu" else 1
        hp = self.hparams
        needed = entry_bytes(entry, hp.context, hp.pad, with_labels)
        fits = needed <= resident_budget(device, processes)
        return device if fits else None

    def _dataset(
        self, split: str, with_labels: bool
    ) -> ContextWindowDataset | ResidentWindowDataset:
        if self.hparams.normalize == "global" and self.global_stats is None:
            meta = self._entry("train", need_labels=False).meta
            self.global_stats = (np.array(meta["raw_mean"]), np.array(meta["raw_var"]))
        stats = self.global_stats if self.hparams.normalize == "global" else None
        entry = self._entry(split, need_labels=with_labels)
        hp = self.hparams
        device = self._resident_device(entry, with_labels)
        if device is not None:
            return ResidentWindowDataset(entry, hp.context, hp.pad, with_labels, stats, device)
        return ContextWindowDataset(entry, hp.context, hp.pad, with_labels, stats)

    @property
    def resident(self) -> bool:
        """True when the split datasets set up so far are held on the device (all or none)."""
        return bool(self.datasets) and all(
            isinstance(ds, ResidentWindowDataset) for ds in self.datasets.values()
        )

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": [("train", True), ("dev", True)],
            "validate": [("dev", True)],
            "test": [(self._test_split(), True)],
            "predict": [(self.hparams.predict_split, False)],
        }
        todo = wanted[stage] if stage else wanted["fit"] + wanted["test"]
        for split, labels in todo:
            name = split if labels else f"{split}-unlabelled"
            if name not in self.datasets:
                self.datasets[name] = self._dataset(split, labels)

    # -- loaders --------------------------------------------------------------------------------
    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        ds = self.datasets[name]
        on_device = isinstance(ds, ResidentWindowDataset)
        # A resident split is gathered in this process, on its device: no workers, no pinning.
        workers = 0 if on_device else self.hparams.num_workers
        # Training drops the ragged last batch: a batch of one frame breaks BatchNorm.
        return DataLoader(
            ds,
            batch_size=self.hparams.batch_size,
            sampler=ChunkedRandomSampler(ds) if shuffle else None,
            drop_last=shuffle and len(ds) > self.hparams.batch_size,
            num_workers=workers,
            collate_fn=passthrough_collate,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available() and not on_device,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._test_split(), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(f"{self.hparams.predict_split}-unlabelled", shuffle=False)

    # -- checkpointed state: training-set statistics for "global" normalisation ----------------
    def state_dict(self) -> dict[str, Any]:
        if self.global_stats is None:
            return {}
        return {
            "global_mean": self.global_stats[0].tolist(),
            "global_var": self.global_stats[1].tolist(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "global_mean" in state_dict:
            self.global_stats = (
                np.array(state_dict["global_mean"]),
                np.array(state_dict["global_var"]),
            )
            for ds in self.datasets.values():  # setup may already have run
                ds.set_global_stats(self.global_stats)
