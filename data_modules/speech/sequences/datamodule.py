"""Whole utterances and their phoneme sequences for CTC (every HW3P2-style Kaggle since 2019).

A split is held as one ``(N, D)`` float32 tensor of all its frames plus utterance offsets (on
the training device when it fits, ``resident``); a batch is one gather of ``(B, T_max)`` frame
indices built on that device from the batch's starts and lengths, padding zeroed: no
per-utterance Python in the loop. Training batches come from
:class:`~data_modules.batches.bucketing.BucketSampler` (similar lengths, exact-resumable,
DDP-disjoint);
evaluation and prediction batches walk the split sorted by length (``sort_eval``), and
predictions are put back in file order by the caller. Layouts:
:mod:`data_modules.speech.layouts.sequences`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from data_modules.batches.augment import mask_frames
from data_modules.batches.batched import passthrough_collate
from data_modules.batches.bucketing import BucketSampler
from data_modules.batches.samplers import ResumableSampler
from data_modules.errors import UserInputError
from data_modules.speech.frames.augment import FrameAugment, check_augment
from data_modules.speech.frames.resident import resident_budget
from data_modules.speech.layouts import sequences as formats
from data_modules.speech.layouts.sequences import SequenceInventory, SequenceSplit

DEMO_LAYOUTS = {"wsj": "wsj_ctc", "librispeech": "librispeech_ctc"}
MASKING_KEYS = ("freq_mask", "time_mask", "p")


def _masking_only(spec: dict | None) -> dict | None:
    """SpecAugment-style masking of whole utterances; VTLP warps frame windows only."""
    if spec is None:
        return None
    if spec["vtlp"]:
        raise UserInputError(
            f"augment: vtlp is for frame windows; utterance sequences take {list(MASKING_KEYS)}"
        )
    return {key: spec[key] for key in MASKING_KEYS}


class SequenceBatch(NamedTuple):
    """A padded batch. Lengths also travel as host arrays, so that packing the sequences and
    CTC's lengths never read the device."""

    x: torch.Tensor  # (B, T, D) frames, zero past each length
    lengths: torch.Tensor  # (B,) frames per utterance
    targets: torch.Tensor  # (B, L) phoneme indices, 0 past each target length; (B, 0) unlabelled
    target_lengths: torch.Tensor  # (B,)
    host_lengths: np.ndarray
    host_target_lengths: np.ndarray


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A small host array on ``device``, queued without waiting for the device (pinned)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _padded_gather(
    flat: torch.Tensor, starts: np.ndarray, lengths: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``starts[b] .. starts[b] + lengths[b]`` of ``flat`` as a zero-padded ``(B, T_max, ...)``
    tensor (one index_select), and the lengths on the device."""
    device = flat.device
    both = _to_device(np.stack([starts, lengths]).astype(np.int64), device)
    width = int(lengths.max()) if len(lengths) else 0
    steps = torch.arange(width, device=device)
    inside = steps < both[1][:, None]
    index = torch.where(inside, both[0][:, None] + steps, 0)
    rows = flat.index_select(0, index.reshape(-1)).view(*index.shape, *flat.shape[1:])
    mask = inside.view(*inside.shape, *([1] * (flat.dim() - 1)))
    return rows.masked_fill(~mask, 0), both[1]


class UtteranceDataset(Dataset):
    """One split: all frames in one tensor, utterances by offset; indexed a batch at a time.

    Dataset index ``i`` is utterance ``order[i]`` (file order unless sorted for evaluation).
    """

    def __init__(
        self, split: SequenceSplit, device: torch.device, order: np.ndarray | None = None
    ) -> None:
        self.names = split.names
        self.lengths = np.array([len(f) for f in split.frames], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.frames = torch.from_numpy(np.concatenate(split.frames).astype(np.float32)).to(device)
        self.order = np.arange(len(self.lengths)) if order is None else np.asarray(order)
        self.labelled = split.targets is not None
        if split.targets is not None:
            self.target_lengths = np.array([len(t) for t in split.targets], dtype=np.int64)
            self.target_starts = np.concatenate([[0], np.cumsum(self.target_lengths)[:-1]])
            self.targets = torch.from_numpy(np.concatenate(split.targets).astype(np.int64))
            self.targets = self.targets.to(device)
            # CTC needs a frame for every label, and one more between equal neighbours
            repeats = [int((t[1:] == t[:-1]).sum()) for t in split.targets]
            self.min_frames = self.target_lengths + np.array(repeats, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.order)

    def __getitems__(self, indices: Sequence[int]) -> SequenceBatch:
        utts = self.order[np.fromiter(indices, dtype=np.int64, count=len(indices))]
        lengths = self.lengths[utts]
        x, device_lengths = _padded_gather(self.frames, self.starts[utts], lengths)
        if self.labelled:
            target_lengths = self.target_lengths[utts]
            starts = self.target_starts[utts]
            targets, device_target_lengths = _padded_gather(self.targets, starts, target_lengths)
        else:
            target_lengths = np.zeros(len(utts), dtype=np.int64)
            targets = torch.zeros(len(utts), 0, dtype=torch.long, device=x.device)
            device_target_lengths = torch.zeros(len(utts), dtype=torch.long, device=x.device)
        return SequenceBatch(
            x, device_lengths, targets, device_target_lengths, lengths, target_lengths
        )

    def __getitem__(self, index: int) -> SequenceBatch:
        return self.__getitems__([index])

    def check_ctc_lengths(self, output_lengths: Callable[[np.ndarray], np.ndarray]) -> None:
        """One line for the first utterance whose sequence cannot fit its output frames."""
        if not self.labelled:
            return
        frames = np.asarray(output_lengths(self.lengths))
        bad = np.flatnonzero(frames < self.min_frames)
        if len(bad):
            i = int(bad[0])
            raise UserInputError(
                f"{self.names[i]}: {self.target_lengths[i]} phonemes "
                f"({self.min_frames[i] - self.target_lengths[i]} repeated) need at least "
                f"{self.min_frames[i]} output frames under CTC, but its {self.lengths[i]} frames "
                f"give {frames[i]} after the model's time downsampling ({len(bad)} utterance(s) "
                "like it): lower the backbone's stride, or leave such utterances out"
            )


class UtteranceSequencesDataModule(pl.LightningDataModule):
    """Utterances with phoneme sequences for CTC, in any HW3P2 layout (or the demo corpus).

    ``source``: ``wsj`` (2019/2020), ``librispeech`` (2021 on), ``auto`` (recognise the
    folder's layout, said in the log), ``demo`` (build the eSpeak demo corpus in
    ``demo_layout`` on first use). ``batch_size`` counts utterances; ``bucket_pool`` global
    batches are sorted by length together (0: no bucketing, a plain seeded shuffle).
    ``normalize``: ``utterance`` (each utterance to zero mean, unit variance per feature),
    ``global`` (the training split's statistics, kept in the checkpoint) or ``none``.
    ``augment``: SpecAugment-style masking of training batches on the device (one band of up
    to ``freq_mask`` features and one span of up to ``time_mask`` frames per utterance, with
    probability ``p``). ``resident``: hold each split on the training device (``auto``: when
    it fits in half its free memory).
    """

    def __init__(
        self,
        data_dir: str = "data/librispeech_ctc_demo",
        source: Literal["auto", "wsj", "librispeech", "demo"] = "auto",
        batch_size: int = 32,
        bucket_pool: int = 32,
        normalize: Literal["none", "utterance", "global"] = "utterance",
        resident: bool | Literal["auto"] = "auto",
        augment: FrameAugment | None = None,
        sort_eval: bool = True,
        predict_split: Literal["test", "dev"] = "test",
        demo_layout: Literal["wsj", "librispeech"] = "librispeech",
        demo_utterances: int = 500,
        demo_seed: int = 0,
        demo_workers: int = 2,
    ) -> None:
        super().__init__()
        for name, value, allowed in (
            ("source", source, ("auto", "demo", *formats.FORMATS)),
            ("normalize", normalize, ("none", "utterance", "global")),
            ("resident", resident, (True, False, "auto")),
            ("predict_split", predict_split, ("test", "dev")),
            ("demo_layout", demo_layout, formats.FORMATS),
        ):
            if value not in allowed:
                raise UserInputError(f"{name} must be one of {allowed}, got {value!r}")
        if batch_size < 1 or bucket_pool < 0:
            raise UserInputError(
                f"batch_size must be >= 1 and bucket_pool >= 0, got {batch_size}, {bucket_pool}"
            )
        self.masking = _masking_only(check_augment(augment))
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self._format: str | None = None
        self._inventory: SequenceInventory | None = None
        self.global_stats: tuple[np.ndarray, np.ndarray] | None = None
        self._splits: dict[tuple[str, bool], SequenceSplit] = {}
        self.datasets: dict[str, UtteranceDataset] = {}

    # -- layout and inventory ---------------------------------------------------------------
    @property
    def format(self) -> str:
        if self._format is None:
            source = self.hparams.source
            if source == "demo":
                self._format = self.hparams.demo_layout
            elif source == "auto":
                self._format, markers = formats.detect_format(self.data_dir)
                rank_zero_info(
                    f"{self.data_dir}: found the {self._format} layout of "
                    f"{formats.COURSES[self._format]} ({', '.join(markers)})"
                )
            else:
                self._format = source
        return self._format

    @property
    def inventory(self) -> SequenceInventory:
        """Feature dimension and phoneme symbols (the demo's, or the training split's)."""
        if self._inventory is None:
            if self.hparams.source == "demo":
                from data_modules.speech.demo_corpus import layouts  # numpy only

                self._inventory = SequenceInventory.from_state(
                    layouts.inventory(DEMO_LAYOUTS[self.format])
                )
            else:
                self._read("train", need_labels=True)
            rank_zero_info(f"{self.data_dir}: {self._inventory.describe()}")
        return self._inventory

    @property
    def num_classes(self) -> int:
        return self.inventory.num_classes

    @property
    def input_shape(self) -> tuple[int]:
        return (self.inventory.feature_dim,)

    # -- reading ----------------------------------------------------------------------------
    def _read(self, split: str, need_labels: bool) -> SequenceSplit:
        key = (split, need_labels)
        if key not in self._splits:
            if self._inventory is None and split != "train":
                self.inventory  # noqa: B018 (the training split's, read first)
            data, inventory = formats.read_split(
                self.format, self.data_dir, split, need_labels, self._inventory
            )
            if self._inventory is None:
                self._inventory = inventory
            self._splits[key] = data
        return self._splits[key]

    def _test_split(self) -> str:
        present, labelled = formats.has_split(self.format, self.data_dir, "test")
        return "test" if present and labelled else "dev"

    def prepare_data(self) -> None:
        if self.hparams.source == "demo":
            from data_modules.speech.demo_corpus import build_demo_corpus  # optional extra: lazy

            build_demo_corpus(
                self.data_dir,
                n_utterances=self.hparams.demo_utterances,
                seed=self.hparams.demo_seed,
                workers=self.hparams.demo_workers,
                layout=DEMO_LAYOUTS[self.format],
            )

    def _device(self, split: SequenceSplit) -> torch.device:
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        mode = self.hparams.resident
        if mode is False or device.type == "cpu":
            return torch.device("cpu")
        if mode is True:
            return device
        frames = sum(len(f) for f in split.frames) * split.feature_dim * 4
        return device if frames <= resident_budget(device, 1) else torch.device("cpu")

    def _normalized(self, split: SequenceSplit) -> SequenceSplit:
        how = self.hparams.normalize
        if how == "none":
            return split
        if how == "utterance":
            frames = [(f - f.mean(0)) / (f.std(0) + 1e-5) for f in split.frames]
        else:
            if self.global_stats is None:
                train = np.concatenate(self._read("train", need_labels=True).frames)
                self.global_stats = (train.mean(0), train.var(0))
            mean, var = self.global_stats
            frames = [(f - mean) / np.sqrt(var + 1e-5) for f in split.frames]
        return SequenceSplit(frames, split.targets, split.names, split.feature_dim)

    def _dataset(self, split: str, labelled: bool) -> UtteranceDataset:
        data = self._read(split, labelled)
        order = None
        if self.hparams.sort_eval and split != "train":
            lengths = np.array([len(f) for f in data.frames])
            order = np.argsort(-lengths, kind="stable")
        dataset = UtteranceDataset(self._normalized(data), self._device(data), order)
        self._splits.pop((split, labelled), None)  # the dataset holds the frames now
        return dataset

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": [("train", True), ("dev", True)],
            "validate": [("dev", True)],
            "test": [(self._test_split(), True)],
            "predict": [(self.hparams.predict_split, False)],
        }
        todo = wanted[stage] if stage else wanted["fit"] + wanted["test"]
        for split, labelled in todo:
            name = split if labelled else f"{split}-unlabelled"
            if name not in self.datasets:
                self.datasets[name] = self._dataset(split, labelled)

    def check_ctc_lengths(self, output_lengths: Callable[[np.ndarray], np.ndarray]) -> None:
        """Refuse (one line) any labelled utterance too short for its sequence under CTC."""
        for dataset in self.datasets.values():
            dataset.check_ctc_lengths(output_lengths)

    # -- loaders ------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        ds, hp = self.datasets["train"], self.hparams
        trainer = getattr(self, "trainer", None)
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        if hp.bucket_pool:
            sampler: ResumableSampler = BucketSampler(
                ds, ds.lengths, hp.batch_size, pool_batches=hp.bucket_pool,
                num_replicas=replicas, rank=rank, seed=seed,
            )  # fmt: skip
        else:
            sampler = ResumableSampler(ds, num_replicas=replicas, rank=rank, seed=seed)
        return DataLoader(
            ds, batch_size=hp.batch_size, sampler=sampler, collate_fn=passthrough_collate
        )

    def _eval_loader(self, name: str) -> DataLoader:
        ds = self.datasets[name]
        return DataLoader(ds, batch_size=self.hparams.batch_size, collate_fn=passthrough_collate)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("dev")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self._test_split())

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(f"{self.hparams.predict_split}-unlabelled")

    # -- augmentation: training batches only, on the device ------------------------------------
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "trainer", None)
        if self.masking is None or trainer is None or not trainer.training:
            return batch
        return batch._replace(x=mask_frames(batch.x, **self.masking))

    # -- checkpointed state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"inventory": self.inventory.to_state()}
        if self.global_stats is not None:
            state["global_mean"] = self.global_stats[0].tolist()
            state["global_var"] = self.global_stats[1].tolist()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a checkpoint's inventory and statistics; refuse data with other phonemes."""
        saved = SequenceInventory.from_state(state_dict["inventory"])
        if self._inventory is not None and self._inventory != saved:
            raise UserInputError(
                f"the checkpoint was trained on {saved.describe()}, but {self.data_dir} holds "
                f"{self._inventory.describe()}: give the checkpoint the data it was trained on"
            )
        self._inventory, self._format = saved, saved.format
        if "global_mean" in state_dict:
            self.global_stats = (
                np.array(state_dict["global_mean"]),
                np.array(state_dict["global_var"]),
            )
