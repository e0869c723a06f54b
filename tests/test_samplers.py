"""Seeded, resumable and unpadded samplers: the order guarantees exact resume and DDP rely on."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from data_modules.batches import index_order
from data_modules.batches.batched import BatchedTensorDataset, passthrough_collate
from data_modules.batches.resumable_loader import ResumableDataLoader, make_resumable
from data_modules.batches.samplers import (
    ResumableSampler,
    UnpaddedDistributedSampler,
    shuffled_order,
)


def test_resumable_sampler_is_seeded_by_epoch_and_skips_on_resume():
    data = range(50)
    sampler = ResumableSampler(data, seed=7, drop_last=False)
    sampler.set_epoch(3)
    full = list(sampler)
    assert full == shuffled_order(50, 7, 3).tolist()
    sampler.set_epoch(4)
    assert list(sampler) != full  # a new permutation every epoch
    sampler.resume_at(3, 20)
    assert list(sampler) == full[20:]  # the rest of epoch 3 ...
    assert list(sampler) == full  # ... and the skip applies once only


def test_replicas_interleave_one_permutation():
    perm = shuffled_order(64, 0, 0).tolist()
    ranks = [list(ResumableSampler(range(64), num_replicas=2, rank=r, seed=0)) for r in (0, 1)]
    assert ranks[0] == perm[0::2] and ranks[1] == perm[1::2]
    # global batch k of 2 x 4 samples = the single-process batch k of 8 samples
    assert sorted(ranks[0][:4] + ranks[1][:4]) == sorted(perm[:8])


@pytest.mark.parametrize("n, world", [(101, 2), (7, 3), (2, 4), (0, 2)])
def test_unpadded_shards_cover_every_index_once(n, world):
    shards = [list(UnpaddedDistributedSampler(range(n), world, r)) for r in range(world)]
    assert sum(shards, []) == list(range(n))
    assert [len(UnpaddedDistributedSampler(range(n), world, r)) for r in range(world)] == [
        len(s) for s in shards
    ]


def test_make_resumable_keeps_the_loader_and_reports_its_position():
    data = BatchedTensorDataset(torch.arange(40).float(), torch.arange(40))
    loader = DataLoader(data, batch_size=8, shuffle=True, drop_last=True,
                        collate_fn=passthrough_collate)  # fmt: skip
    position = [(2, 3)]
    resumable = make_resumable(loader, num_replicas=1, rank=0, seed=5, position=lambda: position[0])
    assert isinstance(resumable, ResumableDataLoader)
    assert resumable.collate_fn is passthrough_collate and len(resumable) == 5
    state = resumable.state_dict()
    assert state == {"epoch": 2, "batches_done": 3, "batch_size": 8, "seed": 5, "num_replicas": 1}
    fresh = make_resumable(loader, num_replicas=1, rank=0, seed=0, position=lambda: (0, 0))
    fresh.load_state_dict(state)
    batches = [x for x, _ in fresh]
    expected = shuffled_order(40, 5, 2)[24:40].float()
    assert len(batches) == 2 and torch.equal(torch.cat(batches), expected)
    with pytest.warns(UserWarning, match="kept as it is"):
        custom = DataLoader(data, batch_size=None)
        assert (
            make_resumable(custom, num_replicas=1, rank=0, seed=0, position=lambda: (0, 0))
            is custom
        )


@pytest.mark.parametrize("n, world", [(50, 1), (50, 3), (7, 4), (64, 2), (3, 5)])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_order_is_distributed_samplers_in_chunks(monkeypatch, n, world, shuffle, drop_last):
    """The int32, chunked order equals torch's DistributedSampler (padding and dropping too)."""
    monkeypatch.setattr(index_order, "CHUNK", 4)  # several chunks even for tiny datasets
    for rank in range(world):
        options = dict(num_replicas=world, rank=rank, shuffle=shuffle, seed=3, drop_last=drop_last)
        ours, reference = (
            ResumableSampler(range(n), **options),
            DistributedSampler(range(n), **options),
        )
        ours.set_epoch(2)
        reference.set_epoch(2)
        assert list(ours) == list(reference), rank
        ours.resume_at(2, 3)
        assert list(ours) == list(reference)[3:]
