"""Batches of utterances of similar length, in an order exact resume and DDP can share: pools of
``pool_batches`` global batches of a seeded permutation, each sorted longest first, cut into
global batches and shuffled (the partial one last); rank ``r`` takes every ``R``-th index."""

from __future__ import annotations

from collections.abc import Sized

import numpy as np
import torch

from data_modules.batches.index_order import index_dtype
from data_modules.batches.samplers import ResumableSampler


class BucketSampler(ResumableSampler):
    """Resumable, DDP-partitioned order of length-bucketed batches; see the module docstring."""

    def __init__(
        self,
        dataset: Sized,
        lengths: np.ndarray,
        batch_size: int,
        *,
        pool_batches: int = 32,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
            drop_last=drop_last,
        )  # fmt: skip
        if len(lengths) != len(dataset):
            raise ValueError(f"{len(lengths)} lengths for {len(dataset)} utterances")
        if batch_size < 1 or pool_batches < 1:
            raise ValueError("batch_size and pool_batches must be at least 1")
        self.lengths = torch.as_tensor(np.asarray(lengths), dtype=torch.long)
        self.batch_size, self.pool_batches = batch_size, pool_batches

    def replicated(self, *, num_replicas: int, rank: int, seed: int) -> BucketSampler:
        return BucketSampler(
            self.dataset, self.lengths.numpy(), self.batch_size, pool_batches=self.pool_batches,
            num_replicas=num_replicas, rank=rank, seed=seed, drop_last=self.drop_last,
        )  # fmt: skip

    def epoch_order(self, n: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=generator)
        group = self.batch_size * self.num_replicas  # one global batch
        pool = group * self.pool_batches
        # one stable sort: by pool, then longest first within it
        lengths = self.lengths[order]
        key = (torch.arange(n) // pool) * (int(self.lengths.max()) + 1) - lengths
        order = order[torch.sort(key, stable=True).indices]
        full = n // group
        batches = order[: full * group].view(full, group)
        batches = batches[torch.randperm(full, generator=generator)].reshape(-1)
        return torch.cat([batches, order[full * group :]]).to(index_dtype(n))


def padding_fraction(lengths: np.ndarray, batches: list[list[int]]) -> float:
    """Share of a padded ``(B, T_max)`` batch's frames that are padding, over all batches."""
    lengths = np.asarray(lengths)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - float(sum(int(lengths[b].sum()) for b in batches)) / padded
