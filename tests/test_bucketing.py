"""The bucketing sampler: each utterance once an epoch, DDP-disjoint, resumable, less padding."""

from __future__ import annotations

import numpy as np

from data_modules.batches.bucketing import BucketSampler, padding_fraction
from data_modules.batches.samplers import ResumableSampler

LENGTHS = np.random.default_rng(0).integers(50, 1500, size=203)


def _batches(sampler: BucketSampler | ResumableSampler, size: int) -> list[list[int]]:
    order = list(sampler)
    return [order[i : i + size] for i in range(0, len(order), size)]


def test_every_utterance_once_per_epoch_in_batches_of_similar_length():
    sampler = BucketSampler(range(203), LENGTHS, 8, pool_batches=4, seed=3)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        assert sorted(sampler) == list(range(203))
    bucketed = padding_fraction(LENGTHS, _batches(sampler, 8))
    plain = padding_fraction(LENGTHS, _batches(ResumableSampler(range(203), seed=3), 8))
    assert bucketed < plain / 2
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first  # a new order every epoch


def test_ranks_are_disjoint_and_match_one_process_global_batches():
    one = BucketSampler(range(203), LENGTHS, 16, pool_batches=4, seed=1)
    ranks = [
        BucketSampler(range(203), LENGTHS, 8, pool_batches=4, seed=1, num_replicas=2, rank=r)
        for r in range(2)
    ]
    shares = [list(r) for r in ranks]
    assert not set(shares[0]) & set(shares[1])
    assert len(shares[0]) == len(shares[1]) == 101  # 203 mod 2 = 1 sits out this epoch
    assert len(set(shares[0]) | set(shares[1])) == 202
    # each global batch of 2 x 8 is a batch of 16 of the same bucketed order
    global_order = [i for batch in _batches(one, 16) for i in batch]
    for k in range(len(shares[0]) // 8):
        merged = set(shares[0][8 * k : 8 * k + 8]) | set(shares[1][8 * k : 8 * k + 8])
        assert merged == set(global_order[16 * k : 16 * k + 16])


def test_resuming_mid_epoch_gives_the_remaining_batches():
    sampler = BucketSampler(range(203), LENGTHS, 8, seed=5)
    sampler.set_epoch(2)
    whole = list(sampler)
    resumed = sampler.replicated(num_replicas=1, rank=0, seed=5)
    resumed.resume_at(2, 5 * 8)
    assert list(resumed) == whole[40:]
