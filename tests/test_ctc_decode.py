"""Greedy and beam CTC decoding on hand-made log-probabilities; edit distance on known pairs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torchmetrics.functional.text import edit_distance

from lightning_dl.tasks.ctc_decode import greedy_decode, prefix_beam_search, to_text


def _log(p: list[list[float]]) -> np.ndarray:
    return np.log(np.asarray(p, dtype=np.float64))


def test_greedy_merges_repeats_drops_blanks_and_respects_lengths():
    # classes: 0 blank, 1 = phoneme 0, 2 = phoneme 1
    best = [[1, 1, 0, 1, 2, 2, 0, 2], [2, 0, 0, 1, 1, 2, 2, 2]]
    scores = torch.nn.functional.one_hot(torch.tensor(best), 3).float()
    out = greedy_decode(scores, np.array([8, 4]))
    assert out[0].tolist() == [0, 0, 1, 1] and out[1].tolist() == [1, 0]


def _sequence_probability(probs: np.ndarray, labels: tuple[int, ...]) -> float:
    """Sum over every alignment of (T, V) probabilities that collapses to ``labels``."""
    total = 0.0
    for path in itertools.product(range(probs.shape[1]), repeat=len(probs)):
        collapsed = [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]
        if tuple(collapsed) == labels:
            total += math.prod(probs[t, c] for t, c in enumerate(path))
    return total


def test_beam_search_finds_the_most_probable_sequence_where_greedy_does_not():
    # The best path is blank-blank ("") but "a" collects more probability over its alignments.
    probs = np.array([[0.4, 0.35, 0.25], [0.4, 0.35, 0.25]])
    assert greedy_decode(torch.tensor(np.log(probs))[None], [2])[0].tolist() == []
    best = prefix_beam_search(np.log(probs), beam_width=8)
    candidates = [(), (1,), (2,), (1, 2), (2, 1), (1, 1), (2, 2)]
    exhaustive = max(candidates, key=lambda seq: _sequence_probability(probs, seq))
    assert tuple(best + 1) == exhaustive == (1,)


def test_beam_search_on_random_frames_matches_the_exhaustive_sum():
    rng = np.random.default_rng(0)
    for _ in range(5):
        probs = rng.dirichlet(np.ones(3) * 0.7, size=4)
        sequences = {()} | {
            tuple(c for i, c in enumerate(p) if c != 0 and (i == 0 or c != p[i - 1]))
            for p in itertools.product(range(3), repeat=4)
        }
        exhaustive = max(sequences, key=lambda seq: _sequence_probability(probs, seq))
        assert tuple(prefix_beam_search(np.log(probs), beam_width=64) + 1) == exhaustive


def test_beam_width_one_equals_greedy_on_a_peaked_sequence():
    probs = _log([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    assert prefix_beam_search(probs, beam_width=1).tolist() == [0, 1]


def test_edit_distance_on_known_pairs_of_phoneme_codes():
    codes = np.array(list("abc"))
    assert to_text([np.array([0, 2, 1])], codes) == ["acb"]
    pairs = [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "abc", 0), ("flaw", "lawn", 2)]
    for pred, target, expected in pairs:
        assert float(edit_distance([pred], [target])) == expected
    mean = edit_distance([p for p, _, _ in pairs], [t for _, t, _ in pairs], reduction="mean")
    assert float(mean) == 2.0
