"""CTC decoding: greedy (best path) on the device, prefix beam search on the host.

Class 0 is the blank; phoneme ``i`` of the inventory is class ``i + 1``. Both decoders return
phoneme indices (blank removed, repeats merged unless a blank separates them).

Why our own beam search: the candidates do not fit this project. torchaudio's CTC decoder is
not usable with the pinned torch here; ``pyctcdecode`` (0.5.0, its last release, 2023) requires
``numpy<2`` while this project runs numpy 2; Parlance ``ctcdecode`` (last release 2020)
compiles against the installed torch. The prefix beam search below is the textbook algorithm
(Hannun et al., 2014, without a language model) in log space, ~60 lines, checked against an
exhaustive sum over alignments in tests/test_ctc_decode.py.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

BLANK = 0


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | np.ndarray) -> list[np.ndarray]:
    """Best-path decoding of ``(B, T, V)`` scores: one argmax on the device, one read back.

    Returns each utterance's phoneme indices (class - 1) as an int64 array.
    """
    best = log_probs.argmax(dim=-1)  # (B, T)
    previous = torch.nn.functional.pad(best[:, :-1], (1, 0), value=BLANK)
    keep = (best != BLANK) & (best != previous)
    best, keep = best.cpu().numpy(), keep.cpu().numpy()
    lengths = np.asarray(lengths.cpu() if isinstance(lengths, torch.Tensor) else lengths)
    return [best[b, : lengths[b]][keep[b, : lengths[b]]] - 1 for b in range(len(best))]


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high = max(a, b)
    return high + math.log1p(math.exp(-abs(a - b)))


def prefix_beam_search(
    log_probs: np.ndarray,
    beam_width: int = 10,
    token_min_logp: float = -5.0,
    beam_prune_logp: float = -10.0,
) -> np.ndarray:
    """The most probable label sequence of one utterance's ``(T, V)`` log-probabilities.

    Each prefix keeps two scores: the log-probability of the alignments ending in a blank and
    of those ending in its last label; the ``beam_width`` best prefixes survive each frame.
    Classes scoring below ``token_min_logp`` in a frame (except that frame's best) are not
    extended, and prefixes scoring ``beam_prune_logp`` below the frame's best are dropped (both
    pyctcdecode's defaults). Returns phoneme indices (class - 1).
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}
    for frame in log_probs:
        candidates = np.flatnonzero(frame >= min(token_min_logp, frame.max()))
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (p_blank, p_label) in beams.items():
            total = _logsumexp(p_blank, p_label)
            last = prefix[-1] if prefix else None
            for c in candidates.tolist():
                p = float(frame[c])
                if c == BLANK:
                    entry = nxt[prefix]
                    entry[0] = _logsumexp(entry[0], total + p)
                elif c == last:
                    entry = nxt[prefix]  # the repeat merges into the same label ...
                    entry[1] = _logsumexp(entry[1], p_label + p)
                    extended = nxt[(*prefix, c)]  # ... unless a blank separated them
                    extended[1] = _logsumexp(extended[1], p_blank + p)
                else:
                    extended = nxt[(*prefix, c)]
                    extended[1] = _logsumexp(extended[1], total + p)
        scored = sorted(((_logsumexp(*v), k, v) for k, v in nxt.items()), reverse=True)
        floor = scored[0][0] + beam_prune_logp
        beams = {k: (v[0], v[1]) for total, k, v in scored[:beam_width] if total >= floor}
    best = max(beams.items(), key=lambda kv: _logsumexp(*kv[1]))[0]
    return np.asarray(best, dtype=np.int64) - 1


def beam_decode(
    log_probs: torch.Tensor, lengths: torch.Tensor | np.ndarray, beam_width: int
) -> list[np.ndarray]:
    """Prefix beam search of every utterance of a ``(B, T, V)`` batch (on the host)."""
    scores = log_probs.float().log_softmax(-1).cpu().numpy()
    lengths = np.asarray(lengths.cpu() if isinstance(lengths, torch.Tensor) else lengths)
    return [prefix_beam_search(scores[b, : lengths[b]], beam_width) for b in range(len(scores))]


def to_text(sequences: list[np.ndarray], codes: np.ndarray, sep: str = "") -> list[str]:
    """Phoneme-index sequences as strings of ``codes`` (one character each, or symbols)."""
    return [sep.join(codes[seq].tolist()) for seq in sequences]
