"""Greedy and beam CTC decoding on hand-made log-probabilities; edit distance on known pairs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.text import edit_distance

from lightning_dl.tasks import ctc_decode
from lightning_dl.tasks.ctc_decode import beam_decode, greedy_decode, prefix_beam_search, to_text


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


def _scores(peak: float, seed: int, frames: int = 80, classes: int = 5) -> torch.Tensor:
    """(1, T, V) log-probabilities: ``peak`` spikes on a random path, 1 frame in 4 a label."""
    g = torch.Generator().manual_seed(seed)
    path = torch.randint(1, classes, (frames,), generator=g)
    path[torch.rand(frames, generator=g) > 0.25] = 0
    logits = torch.randn(frames, classes, generator=g) + peak * F.one_hot(path, classes)
    return logits.log_softmax(-1)[None]


def _log_likelihood(log_probs: torch.Tensor, labels: np.ndarray) -> float:
    """log P(labels | scores), CTC's forward sum over every alignment of the labels."""
    targets = torch.from_numpy(labels + 1)[None]
    lp = log_probs.double()[:, None]
    return -float(F.ctc_loss(lp, targets, [len(lp)], [targets.shape[1]], reduction="sum"))


def test_flashlight_finds_our_path_or_ours_is_likelier():
    """Both searches are approximate: on peaked (trained) scores they agree; on flat ones the
    C++ decoder settles for a less likely sequence than ours (on these seeds; not always)."""
    pytest.importorskip("flashlight.lib.text.decoder", reason="flashlight-text is not installed")
    for seed, classes, peak in itertools.product(range(5), (5, 42), (8.0, 0.0)):
        scores = _scores(peak, seed, classes=classes)
        fast = beam_decode(scores, [80], 8)[0]
        ours = beam_decode(scores, [80], 8, reference=True)[0]
        if peak:
            assert fast.tolist() == ours.tolist(), (seed, classes)
        elif fast.tolist() != ours.tolist():
            assert _log_likelihood(scores[0], ours) > _log_likelihood(scores[0], fast), seed


def test_flashlight_decodes_each_utterance_within_its_length():
    pytest.importorskip("flashlight.lib.text.decoder", reason="flashlight-text is not installed")
    scores = torch.cat([_scores(8.0, 0), _scores(8.0, 1)])
    batch = beam_decode(scores, torch.tensor([80, 50]), 4)
    alone = [beam_decode(scores[:1], [80], 4)[0], beam_decode(scores[1:, :50], [50], 4)[0]]
    assert [b.tolist() for b in batch] == [a.tolist() for a in alone]
    assert batch[1].tolist() == greedy_decode(scores[1:], [50])[0].tolist()  # peaked: best path


def test_beam_decode_without_flashlight_runs_our_search(monkeypatch):
    scores = _scores(3.0, 0)
    monkeypatch.setattr(ctc_decode, "LexiconFreeDecoder", None)
    expected = prefix_beam_search(scores[0].numpy(), 8)
    assert beam_decode(scores, [80], 8)[0].tolist() == expected.tolist()


def test_edit_distance_on_known_pairs_of_phoneme_codes():
    codes = np.array(list("abc"))
    assert to_text([np.array([0, 2, 1])], codes) == ["acb"]
    pairs = [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "abc", 0), ("flaw", "lawn", 2)]
    for pred, target, expected in pairs:
        assert float(edit_distance([pred], [target])) == expected
    mean = edit_distance([p for p, _, _ in pairs], [t for _, t, _ in pairs], reduction="mean")
    assert float(mean) == 2.0
