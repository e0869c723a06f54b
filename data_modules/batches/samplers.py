"""Samplers whose order depends only on (seed, epoch, rank): the basis of exact resume and DDP.
Rank ``r`` of ``R`` takes every ``R``-th index of one permutation, so a DDP global batch is the
one a single process would draw."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import torch
from torch.utils.data import DistributedSampler

from data_modules.batches.index_order import in_chunks, index_dtype


class ResumableSampler(DistributedSampler):
    """Seeded per-epoch shuffle (or identity) that can skip the samples already consumed."""

    def __init__(
        self,
        dataset: Sized,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__(
            dataset,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.skip = 0  # samples of this replica to skip in the next epoch only

    def resume_at(self, epoch: int, samples_done: int) -> None:
        """Make the next ``__iter__`` continue ``epoch`` after ``samples_done`` of its samples."""
        self.set_epoch(epoch)
        self.skip = samples_done

    def __iter__(self) -> Iterator[int]:
        """``DistributedSampler``'s order, kept as one int32 tensor (see ``index_order``)."""
        skip, self.skip = self.skip, 0
        n = len(self.dataset)  # type: ignore[arg-type]
        order = self.epoch_order(n)
        if self.total_size > n:  # padding repeats the order from its start, like the base class
            order = order.repeat(math.ceil(self.total_size / n))
        return in_chunks(order[: self.total_size][self.rank :: self.num_replicas][skip:])

    def epoch_order(self, n: int) -> torch.Tensor:
        """The global order of this epoch, before the replicas' split (a subclass may change it:
        :class:`data_modules.batches.bucketing.BucketSampler` groups similar lengths)."""
        if self.shuffle:
            return shuffled_order(n, self.seed, self.epoch, dtype=index_dtype(n))
        return torch.arange(n, dtype=index_dtype(n))

    def replicated(self, *, num_replicas: int, rank: int, seed: int) -> ResumableSampler:
        """The same sampler for ``rank`` of ``num_replicas`` with ``seed`` (exact resume's)."""
        return type(self)(
            self.dataset,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=self.shuffle,
            seed=seed,
            drop_last=self.drop_last,
        )


class UnpaddedDistributedSampler(DistributedSampler):
    """Rank ``r`` of ``R`` gets the ``r``-th contiguous shard of ``range(n)``, unpadded (shards
    differ by at most one); a ``DistributedSampler``, so Lightning keeps it."""

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)  # type: ignore[arg-type]
        n = len(dataset)
        per_rank = math.ceil(n / num_replicas) if n else 0
        self.start = min(n, rank * per_rank)
        self.stop = min(n, self.start + per_rank)

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))


def shuffled_order(n: int, seed: int, epoch: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """The permutation :class:`ResumableSampler` uses for ``epoch`` (the same for any dtype)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch), dtype=dtype)
