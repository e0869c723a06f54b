"""Rebuild a DataModule's loaders so their order depends only on (seed, epoch, rank): Lightning
checkpoints a resumable loader's ``state_dict``, so a resumed run continues the same permutation
past the batches already trained."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, RandomSampler, SequentialSampler

from data_modules.batches.samplers import ResumableSampler, UnpaddedDistributedSampler

Position = tuple[int, int]  # (epoch, batches of that epoch already trained on)
_COPIED = (
    "num_workers",
    "collate_fn",
    "pin_memory",
    "timeout",
    "worker_init_fn",
    "multiprocessing_context",
    "persistent_workers",
    "pin_memory_device",
    "in_order",
)


def _loader_kwargs(loader: DataLoader) -> dict[str, Any]:
    kwargs = {k: getattr(loader, k) for k in _COPIED if hasattr(loader, k)}
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    return kwargs


class ResumableDataLoader(DataLoader):
    """A training DataLoader whose position in the epoch is saved in Lightning checkpoints."""

    def __init__(self, *args: Any, position: Callable[[], Position], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position = position
        self.restored = False  # whether Lightning handed this loader its checkpointed state

    def state_dict(self) -> dict[str, Any]:
        epoch, done = self.position()
        sampler = self.sampler
        assert isinstance(sampler, ResumableSampler)
        return {
            "epoch": epoch,
            "batches_done": done,
            "batch_size": self.batch_size,
            "seed": sampler.seed,
            "num_replicas": sampler.num_replicas,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sampler = self.sampler
        assert isinstance(sampler, ResumableSampler)
        self.restored = True
        sampler.seed = state["seed"]
        epoch, done = state["epoch"], state["batches_done"]
        if (state["batch_size"], state["num_replicas"]) != (self.batch_size, sampler.num_replicas):
            warnings.warn(
                f"resuming with batch size {self.batch_size} x {sampler.num_replicas} processes, "
                f"but the checkpoint was taken with {state['batch_size']} x "
                f"{state['num_replicas']}: epoch {epoch} restarts from its first batch, so the "
                "run is not an exact continuation",
                stacklevel=2,
            )
            done = 0
        sampler.resume_at(epoch, done * (self.batch_size or 1))


def make_resumable(
    loader: DataLoader, *, num_replicas: int, rank: int, seed: int, position: Callable[[], Position]
) -> DataLoader:
    """The same loader with a seeded, resumable sampler; unchanged (and a warning) if impossible."""
    if not isinstance(loader, DataLoader):
        warnings.warn(
            f"train_dataloader returned a {type(loader).__name__}, not a DataLoader: kept as it "
            "is, so resuming mid-epoch will not continue the same data order",
            stacklevel=2,
        )
        return loader
    sampler = loader.sampler
    plain = isinstance(sampler, SequentialSampler) or (
        (type(sampler) is RandomSampler or getattr(sampler, "uniform_permutation", False))
        and not sampler.replacement
        and sampler._num_samples is None  # no public accessor
    )
    if isinstance(loader, ResumableDataLoader):
        return loader
    if isinstance(sampler, ResumableSampler) and loader.batch_size is not None:
        # the DataModule's own resumable order (bucketing by length): kept, reseeded, re-ranked
        resumable = sampler.replicated(num_replicas=num_replicas, rank=rank, seed=seed)
    elif loader.batch_size is None or isinstance(loader.dataset, IterableDataset) or not plain:
        warnings.warn(
            f"train loader with {type(sampler).__name__} / batch_size={loader.batch_size} kept "
            "as it is: resuming mid-epoch will not continue the same data order",
            stacklevel=2,
        )
        return loader
    else:
        resumable = ResumableSampler(
            loader.dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=isinstance(sampler, RandomSampler),
            seed=seed,
            drop_last=loader.drop_last,
        )
    return ResumableDataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=resumable,
        drop_last=loader.drop_last,
        generator=torch.Generator().manual_seed(seed),  # worker seeds, not the global RNG
        position=position,
        **_loader_kwargs(loader),
    )


def make_sharded(loader: DataLoader, *, num_replicas: int, rank: int) -> DataLoader:
    """An evaluation loader over this rank's contiguous, unpadded shard (each sample once)."""
    if (
        not isinstance(loader, DataLoader)
        or loader.batch_size is None
        or isinstance(loader.dataset, IterableDataset)
        or not isinstance(loader.sampler, SequentialSampler)
    ):
        return loader  # Lightning's padded DistributedSampler takes over, as usual
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=UnpaddedDistributedSampler(loader.dataset, num_replicas, rank),
        drop_last=loader.drop_last,
        **_loader_kwargs(loader),
    )
