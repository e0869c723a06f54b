"""Frame-level phoneme classification (HW1P2-style): a frame and ``context`` frames each side,
gathered a batch at a time, so memory stays O(N x D) whatever k is. The courses' test sets have
no labels, so ``trainer.test`` runs on dev unless test has them (a demo corpus)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader

from data_modules.batches.batched import passthrough_collate
from data_modules.errors import InputFileNotFoundError, UserInputError, require_at_least
from data_modules.speech.checks import Inventory, window_frames
from data_modules.speech.datamodule import SpeechDataModule
from data_modules.speech.frames.augment import FrameAugment, FrameAugmenter, check_augment
from data_modules.speech.frames.cache import CacheEntry, build_or_load
from data_modules.speech.frames.memmap import ChunkedRandomSampler, ContextWindowDataset
from data_modules.speech.frames.resident import ResidentWindowDataset, entry_bytes
from data_modules.speech.frames.voices import split_voices, voices_report
from data_modules.speech.layouts import frames as layouts
from data_modules.speech.layouts.frames import SplitSource, split_source


class SpeechFramesDataModule(SpeechDataModule):
    """Frame windows of Kaggle WSJ, LibriSpeech HW1P2, libriphone or the demo corpus.

    ``source``: a layout of :mod:`data_modules.speech.layouts.frames`, ``auto`` (recognised and
    logged) or ``demo`` (built in ``demo_layout`` on first use). ``normalize``: "utterance" (in the
    cache), "global" (train mean/var in the gather, kept in the checkpoint) or "none".
    ``resident``: hold each split on the training device (no workers, no per-batch copy), the
    memory map (``false``) or whichever fits (``auto``; each DDP rank holds its copy).
    ``augment``: VTLP and masking of training batches (:mod:`~data_modules.speech.frames.augment`).
    """

    layouts = layouts

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
        super().__init__(data_dir)
        self.save_hyperparameters()
        self._check_settings()
        require_at_least(type(self).__name__, 0, context=context, num_workers=num_workers)
        require_at_least(type(self).__name__, 0, split_seed=split_seed)
        if not 0.0 < val_fraction < 1.0:  # also NaN
            raise UserInputError(f"val_fraction={val_fraction}: expected a fraction in (0, 1)")
        self.augment = check_augment(augment)
        self._augmenter: FrameAugmenter | None = None

    def _known_inventory(self) -> Inventory | None:
        """Also a demo corpus's, from its manifest, without reading its training data."""
        if super()._known_inventory() is None:
            from data_modules.speech.demo_corpus import layouts, read_manifest  # numpy only

            manifest = read_manifest(self.data_dir)
            if manifest is not None and manifest.get("layout", "kaggle") == self.format:
                self._inventory = Inventory.from_state(layouts.inventory(self.format))
        return self._inventory

    def _read_inventory(self) -> Inventory:
        return self._entry("train", need_labels=True).inventory(self.format)

    @property
    def input_shape(self) -> tuple[int, int]:
        return (window_frames(self.hparams.context), self.inventory.feature_dim)

    def _source(self, split: str, need_labels: bool) -> SplitSource:
        hp = self.hparams
        try:
            return split_source(
                self.format, self.data_dir, split, need_labels, hp.val_fraction, hp.split_seed
            )
        except InputFileNotFoundError as error:
            self._refuse(error)

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

    def _test_source(self) -> SplitSource | None:
        try:
            return self._source("test", need_labels=False)
        except InputFileNotFoundError:  # no test files: fit and test use train and dev only
            return None

    def _test_split(self) -> str:
        """The split ``trainer.test`` evaluates: test when it has labels, else dev."""
        test = self._test_source()
        return "test" if test is not None and test.has_labels else "dev"

    def prepare_data(self) -> None:
        super().prepare_data()
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.state.fn == "predict":  # nothing but the split read
            self._entry(self.hparams.predict_split, need_labels=False)
            return
        for split in ("train", "dev"):
            self._entry(split, need_labels=True)
        if (test := self._test_source()) is not None:
            self._entry("test", need_labels=test.has_labels)

    def _dataset(
        self, split: str, with_labels: bool
    ) -> ContextWindowDataset | ResidentWindowDataset:
        if self.hparams.normalize == "global" and self.global_stats is None:
            meta = self._entry("train", need_labels=False).meta
            self.global_stats = (np.array(meta["raw_mean"]), np.array(meta["raw_var"]))
        stats = self.global_stats if self.hparams.normalize == "global" else None
        entry = self._entry(split, need_labels=with_labels)
        hp = self.hparams
        device = self._resident_device(entry_bytes(entry, hp.context, hp.pad, with_labels))
        kind = ContextWindowDataset if device is None else ResidentWindowDataset
        return kind(entry, hp.context, hp.pad, with_labels, stats, device)

    @property
    def resident(self) -> bool:
        """True when the split datasets set up so far are held on the device (all or none)."""
        return bool(self.datasets) and all(
            isinstance(ds, ResidentWindowDataset) for ds in self.datasets.values()
        )

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if stage in ("fit", None):
            _ = self.augmenter  # read the training statistics now, not in the first step

    def voices(self) -> dict | None:
        """Voices of train, dev and test, and how many of dev's and test's training had, or None."""
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

    def _augmented(self, batch: Any) -> Any:
        x, *rest = batch
        return (self.augmenter(x), *rest)


WSJFramesDataModule = SpeechFramesDataModule  # the name configs and checkpoints gave it first
