"""Whole utterances and their phoneme (HW3P2, CTC) or character (HW4P2) sequences.

A split is one ``(N, D)`` frames tensor (on the training device when it fits), a batch one
gather of ``(B, T_max)`` indices; ``sort_eval`` evaluates longest first (callers reorder)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from data_modules.batches.augment import mask_frames
from data_modules.batches.batched import index_batch, passthrough_collate
from data_modules.batches.bucketing import BucketSampler
from data_modules.batches.samplers import ResumableSampler
from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.speech.checks import Inventory
from data_modules.speech.datamodule import SpeechDataModule
from data_modules.speech.frames.augment import FrameAugment, check_augment
from data_modules.speech.layouts import sequences as formats
from data_modules.speech.layouts.sequences import SequenceSplit

MASKING_KEYS = ("freq_mask", "time_mask", "p")
Layout = Literal["wsj", "librispeech", "wsj_chars", "librispeech_chars"]  # formats.FORMATS


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


def _padded_gather(
    flat: torch.Tensor, starts: np.ndarray, lengths: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``starts[b] .. starts[b] + lengths[b]`` of ``flat`` as a zero-padded ``(B, T_max, ...)``
    tensor (one index_select), and the lengths on the device."""
    device = flat.device
    both = index_batch(torch.from_numpy(np.stack([starts, lengths]).astype(np.int64)), device)
    width = int(lengths.max()) if len(lengths) else 0
    steps = torch.arange(width, device=device)
    inside = steps < both[1][:, None]
    index = torch.where(inside, both[0][:, None] + steps, 0)
    rows = flat.index_select(0, index.reshape(-1)).view(*index.shape, *flat.shape[1:])
    mask = inside.view(*inside.shape, *([1] * (flat.dim() - 1)))
    return rows.masked_fill(~mask, 0), both[1]


class UtteranceDataset(Dataset):
    """One split: all frames in one tensor, indexed a batch at a time; index ``i`` is
    utterance ``order[i]``."""

    def __init__(
        self, split: SequenceSplit, device: torch.device, order: np.ndarray | None = None,
        unit: str = "phonemes",
    ) -> None:  # fmt: skip
        self.names, self.unit = split.names, unit  # unit: what a target class is, for messages
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
                f"{self.names[i]}: {self.target_lengths[i]} {self.unit} "
                f"({self.min_frames[i] - self.target_lengths[i]} repeated) need at least "
                f"{self.min_frames[i]} output frames under CTC, but its {self.lengths[i]} frames "
                f"give {frames[i]} after the model's time downsampling ({len(bad)} utterance(s) "
                "like it): lower the backbone's stride, or leave such utterances out"
            )


class UtteranceSequencesDataModule(SpeechDataModule):
    """Utterances with phoneme (CTC) or character (attention) sequences, in an HW3P2 or HW4P2
    layout or the demo corpus.

    ``batch_size`` counts utterances; ``bucket_pool`` global batches are sorted by length together
    (0: a plain seeded shuffle). ``augment``: masking only. Otherwise as the frame DataModule."""

    layouts = formats
    demo_names = {"wsj": "wsj_ctc", "librispeech": "librispeech_ctc"}

    def __init__(
        self,
        data_dir: str = "data/librispeech_ctc_demo",
        source: Literal["auto", "demo"] | Layout = "auto",
        batch_size: int = 32,
        bucket_pool: int = 32,
        normalize: Literal["none", "utterance", "global"] = "utterance",
        resident: bool | Literal["auto"] = "auto",
        augment: FrameAugment | None = None,
        sort_eval: bool = True,
        predict_split: Literal["test", "dev"] = "test",
        demo_layout: Layout = "librispeech",
        demo_utterances: int = 500,
        demo_seed: int = 0,
        demo_workers: int = 2,
    ) -> None:
        super().__init__(data_dir)
        if batch_size < 1 or bucket_pool < 0:
            raise UserInputError(
                f"batch_size must be >= 1 and bucket_pool >= 0, got {batch_size}, {bucket_pool}"
            )
        self.save_hyperparameters()
        self._check_settings()
        self.augment = _masking_only(check_augment(augment))
        self._splits: dict[tuple[str, bool], SequenceSplit] = {}

    @property
    def input_shape(self) -> tuple[int]:
        return (self.inventory.feature_dim,)

    def _read_split(
        self, split: str, need_labels: bool, inventory: Inventory | None
    ) -> tuple[SequenceSplit, Inventory]:
        try:
            return formats.read_split(self.format, self.data_dir, split, need_labels, inventory)
        except InputFileNotFoundError as error:
            self._refuse(error)

    def _read_inventory(self) -> Inventory:
        data, inventory = self._read_split("train", True, None)
        self._splits[("train", True)] = data
        return inventory

    def _read(self, split: str, need_labels: bool) -> SequenceSplit:
        inventory = self.inventory  # the training split's, read first
        key = (split, need_labels)
        if key not in self._splits:
            self._splits[key], _ = self._read_split(split, need_labels, inventory)
        return self._splits[key]

    def _test_split(self) -> str:
        present, labelled = formats.has_split(self.format, self.data_dir, "test")
        return "test" if present and labelled else "dev"

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
        frame_bytes = sum(len(f) for f in data.frames) * data.feature_dim * 4
        on_cpu = self._training_device().type == "cpu"
        device = None if on_cpu else self._resident_device(frame_bytes)
        device = device or torch.device("cpu")
        dataset = UtteranceDataset(self._normalized(data), device, order, self.inventory.unit)
        self._splits.pop((split, labelled), None)  # the dataset holds the frames now
        return dataset

    def check_ctc_lengths(self, output_lengths: Callable[[np.ndarray], np.ndarray]) -> None:
        """Refuse (one line) a labelled utterance too short for its sequence under CTC, in
        every split the run uses: a fit also checks the test split it is tested on."""
        trainer = getattr(self, "trainer", None)
        test = self._test_split()
        if trainer is not None and trainer.state.fn == "fit" and test not in self.datasets:
            self.datasets[test] = self._dataset(test, True)
        for dataset in self.datasets.values():
            dataset.check_ctc_lengths(output_lengths)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        ds, hp = self.datasets[name], self.hparams
        if not shuffle:
            return DataLoader(ds, batch_size=hp.batch_size, collate_fn=passthrough_collate)
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

    def _augmented(self, batch: Any) -> Any:
        return batch._replace(x=mask_frames(batch.x, **self.augment))
