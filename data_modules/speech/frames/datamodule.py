"""Frame-level phoneme classification (every HW1P2-style Kaggle since 2019): context windows.

Each sample is a frame plus ``context`` frames on each side, a ``(2k+1, D)`` window. Windows
are never materialised: a batch is one vectorised gather over the (N, D) frames with an index
matrix (B, 2k+1), so memory stays O(N x D) whatever k is. The frames are either a memory map
gathered on the host (:mod:`data_modules.speech.frames.memmap`; DataLoader workers share its pages)
or,
with ``resident``, a copy on the training device gathered there
(:mod:`data_modules.speech.frames.resident`); both give the same batches.
Any layout of :mod:`data_modules.speech.layouts.frames` (Kaggle WSJ, LibriSpeech HW1P2, NTU
libriphone)
converts once to the same cache (:mod:`data_modules.speech.frames.cache`).

Splits: ``fit`` trains on train and validates on dev (libriphone: a seeded share of train).
The courses' test sets have no labels, so ``trainer.test`` runs on dev unless the test split
has labels (a demo corpus writes them); ``predict`` yields ``(x,)`` over the test split in the
order a submission lists its frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_info
from torch.utils.data import DataLoader

from data_modules.batches.batched import passthrough_collate
from data_modules.errors import InputFileNotFoundError, UserInputError, require_at_least
from data_modules.speech.frames.augment import FrameAugment, FrameAugmenter, check_augment
from data_modules.speech.frames.cache import CacheEntry, build_or_load
from data_modules.speech.frames.checks import Inventory, window_frames
from data_modules.speech.frames.memmap import ChunkedRandomSampler, ContextWindowDataset
from data_modules.speech.frames.resident import ResidentWindowDataset, entry_bytes, resident_budget
from data_modules.speech.frames.voices import split_voices, voices_report
from data_modules.speech.layouts.frames import (
    FORMATS,
    SplitSource,
    detect_format,
    layout_of,
    split_source,
)


class WSJFramesDataModule(pl.LightningDataModule):
    """Frame windows of any supported layout: Kaggle WSJ, LibriSpeech HW1P2, libriphone, demo.

    ``source``: ``kaggle``, ``librispeech`` or ``libriphone`` (see
    :mod:`data_modules.speech.layouts.frames`); ``auto`` recognises the folder's layout and says
    which it
    found; ``demo`` builds the eSpeak demo corpus in ``demo_layout`` on first use. The feature
    dimension and the classes (symbols and their order for LibriSpeech) come from the data and
    are kept in the checkpoint (``state_dict``), so prediction writes the labels the competition
    expects.

    ``normalize``: "none"; "utterance" (each utterance to zero mean / unit variance per band,
    baked into the cache); "global" (train mean/var, applied in the gather and saved in the
    checkpoint via ``state_dict`` so prediction uses the training statistics).

    ``resident``: ``true`` copies each split's frames, labels and offsets to the training device
    once and gathers batches there (no DataLoader workers, no per-batch copy of frames);
    ``false`` gathers from the memory map on the host, in ``num_workers`` processes; ``auto``
    chooses resident when a split fits comfortably (half the free device memory, or on the CPU
    half the available RAM shared by this machine's processes; see
    :func:`data_modules.speech.frames.resident.resident_budget`). Under DDP each rank holds its
    copy.

    ``augment``: vocal-tract-length perturbation (``{vtlp: 0.1}``) and SpecAugment-style masking
    (``{freq_mask: F, time_mask: T, p: P}``) of training batches on the training device, never
    of evaluation batches (:mod:`data_modules.speech.frames.augment`); they draw from the device's
    default generator, which exact resume reseeds before every batch.
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
        source: Literal["auto", "kaggle", "demo", "librispeech", "libriphone"] = "auto",
        cache_dir: str | None = None,
        demo_utterances: int = 2000,
        demo_seed: int = 0,
        demo_workers: int = 2,
        demo_layout: Literal["kaggle", "librispeech", "libriphone"] = "kaggle",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        predict_split: Literal["test", "dev"] = "test",
        resident: bool | Literal["auto"] = "auto",
        augment: FrameAugment | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        require_at_least(name, 0, context=context, num_workers=num_workers)
        require_at_least(name, 1, batch_size=batch_size, demo_utterances=demo_utterances)
        require_at_least(name, 1, demo_workers=demo_workers)
        for name, value, allowed in (
            ("normalize", normalize, ("none", "utterance", "global")),
            ("pad", pad, ("zero", "edge")),
            ("source", source, ("auto", "demo", *FORMATS)),
            ("demo_layout", demo_layout, FORMATS),
            ("dtype", dtype, ("float32", "float16")),
            ("predict_split", predict_split, ("test", "dev")),
            ("resident", resident, (True, False, "auto")),
        ):
            if value not in allowed:
                raise UserInputError(f"{name} must be one of {allowed}, got {value!r}")
        self.augment = check_augment(augment)
        self._augmenter: FrameAugmenter | None = None
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.global_stats: tuple[np.ndarray, np.ndarray] | None = None
        self.datasets: dict[str, ContextWindowDataset | ResidentWindowDataset] = {}
        self._format: str | None = None
        self._inventory: Inventory | None = None

    # -- layout and inventory ---------------------------------------------------------------
    @property
    def format(self) -> str:
        """The layout read: ``source``, the demo's layout, or the one ``auto`` found."""
        if self._format is None:
            source = self.hparams.source
            if source == "demo":
                self._format = self.hparams.demo_layout
            elif source == "auto":
                self._format, markers = detect_format(self.data_dir)
                rank_zero_info(
                    f"{self.data_dir}: found the {self._format} layout ({', '.join(markers)})"
                )
            else:
                self._format = source
        return self._format

    def _known_inventory(self) -> Inventory | None:
        """The inventory when it is known without reading training data: from a checkpoint, the
        demo corpus being built, or a demo corpus's manifest; else None."""
        if self._inventory is None:
            from data_modules.speech.demo_corpus import layouts, read_manifest  # numpy only

            if self.hparams.source == "demo":
                self._inventory = Inventory.from_state(layouts.inventory(self.format))
            else:
                manifest = read_manifest(self.data_dir)
                if manifest is not None and manifest.get("layout", "kaggle") == self.format:
                    self._inventory = Inventory.from_state(layouts.inventory(self.format))
        return self._inventory

    @property
    def inventory(self) -> Inventory:
        """Feature dimension and classes of the data (from its training split, once)."""
        known = self._known_inventory()
        if known is None:
            self._inventory = self._entry("train", need_labels=True).inventory(self.format)
            rank_zero_info(f"{self.data_dir}: {self._inventory.describe()}")
        return self._inventory

    @property
    def num_classes(self) -> int:
        return self.inventory.num_classes

    @property
    def input_shape(self) -> tuple[int, int]:
        return (window_frames(self.hparams.context), self.inventory.feature_dim)

    # -- files and cache ------------------------------------------------------------------------
    def _source(self, split: str, need_labels: bool) -> SplitSource:
        hp = self.hparams
        try:
            return split_source(
                self.format, self.data_dir, split, need_labels, hp.val_fraction, hp.split_seed
            )
        except InputFileNotFoundError as error:
            found = layout_of(self.data_dir)
            if found is None or found[0] == self.format:
                raise
            raise InputFileNotFoundError(
                f"{error}; {self.data_dir} holds the {found[0]} layout ({', '.join(found[1])}): "
                f"--data.source {found[0]} (or auto) reads it"
            ) from error

    def _entry(self, split: str, need_labels: bool) -> CacheEntry:
        inventory = self._known_inventory()
        if inventory is None and split != "train":
            inventory = self.inventory  # the training split's, read first
        return build_or_load(
            self.data_dir,
            split,
            cache_dir=self.hparams.cache_dir,
            dtype=self.hparams.dtype,
            utterance_norm=self.hparams.normalize == "utterance",
            need_labels=need_labels,
            source=self._source(split, need_labels),
            inventory=inventory,
        )

    def _test_split(self) -> str:
        """The split ``trainer.test`` evaluates: test when it has labels, else dev."""
        try:
            return "test" if self._source("test", need_labels=False).has_labels else "dev"
        except InputFileNotFoundError:  # no test split at all
            return "dev"

    def prepare_data(self) -> None:
        if self.hparams.source == "demo":
            # Cheap when the corpus on disk matches the request; a different request is refused
            # (FileExistsError) rather than silently training on the old corpus.
            from data_modules.speech.demo_corpus import build_demo_corpus  # optional extra: lazy

            build_demo_corpus(
                self.data_dir,
                n_utterances=self.hparams.demo_utterances,
                seed=self.hparams.demo_seed,
                workers=self.hparams.demo_workers,
                layout=self.hparams.demo_layout,
            )
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.state.fn == "predict":  # nothing but the split read
            self._entry(self.hparams.predict_split, need_labels=False)
            return
        for split in ("train", "dev"):
            self._entry(split, need_labels=True)
        try:
            test = self._source("test", need_labels=False)
        except InputFileNotFoundError:  # no test files: fit and test use train and dev only
            return
        self._entry("test", need_labels=test.has_labels)

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
        if stage in ("fit", None):
            _ = self.augmenter  # read the training statistics now, not in the first step

    def voices(self) -> dict | None:
        """How many voices train, dev and test have, and how many of dev's and test's training
        had (:mod:`data_modules.speech.frames.voices`); None when the layout does not tell."""
        from data_modules.speech.demo_corpus import read_manifest  # numpy only

        manifest = read_manifest(self.data_dir)
        found = {}
        for split in ("train", "dev", "test"):
            try:
                files = self._source(split, need_labels=False).files
            except InputFileNotFoundError:
                continue
            found[split] = split_voices(files, split, manifest)
        return voices_report(found)

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

    # -- augmentation: training batches only, on the device ------------------------------------
    @property
    def augmenter(self) -> FrameAugmenter | None:
        """What ``augment`` does to a training batch (built once the layout is known)."""
        if self.augment is not None and self._augmenter is None:
            raw_var = None
            if self.augment["vtlp"] > 0 and self.hparams.normalize != "none":
                raw_var = np.array(self._entry("train", need_labels=False).meta["raw_var"])
            fmt, dim = self.format, self.inventory.feature_dim
            self._augmenter = FrameAugmenter(self.augment, fmt, dim, raw_var)
        return self._augmenter

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "trainer", None)
        if self.augment is None or trainer is None or not trainer.training:
            return batch
        x, *rest = batch
        return (self.augmenter(x), *rest)

    # -- checkpointed state: the inventory, and training statistics for "global" ------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"inventory": self.inventory.to_state()}
        if self.global_stats is not None:
            state["global_mean"] = self.global_stats[0].tolist()
            state["global_var"] = self.global_stats[1].tolist()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a checkpoint's inventory and statistics; refuse data with other classes."""
        if "inventory" in state_dict:
            saved = Inventory.from_state(state_dict["inventory"])
            current = self._inventory
            if current is not None and current != saved:
                raise UserInputError(
                    f"the checkpoint was trained on {saved.describe()}, but {self.data_dir} "
                    f"holds {current.describe()}: give the checkpoint the data it was trained on"
                )
            self._inventory = saved
            self._format = saved.format
        if "global_mean" in state_dict:
            self.global_stats = (
                np.array(state_dict["global_mean"]),
                np.array(state_dict["global_var"]),
            )
            for ds in self.datasets.values():  # setup may already have run
                ds.set_global_stats(self.global_stats)
