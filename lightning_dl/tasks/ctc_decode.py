"""CTC decoding: greedy (best path) on the device, prefix beam search on the host.

Class 0 is the blank; phoneme ``i`` is class ``i + 1``; both decoders return phoneme indices.
Beam search runs flashlight-text's C++ decoder where installed (the ``ctc`` extra; 4-50x faster,
bench/ctc_decode.py); ours (Hannun et al., 2014, in log space) is the reference and fallback.
pyctcdecode requires numpy<2 and torchaudio's decoder does not work with the pinned torch.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import torch

try:
    from flashlight.lib.text.decoder import (
        CriterionType,
        LexiconFreeDecoder,
        LexiconFreeDecoderOptions,
        ZeroLM,
    )
except ImportError:  # the optional extra is not installed: our own search decodes
    LexiconFreeDecoder = None

BLANK = 0
TOKEN_MIN_LOGP, BEAM_PRUNE_LOGP = -5.0, -10.0  # pyctcdecode's defaults


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | np.ndarray) -> list[np.ndarray]:
    """Best-path decoding of ``(B, T, V)`` scores (one argmax on the device, one read back):
    each utterance's phoneme indices (class - 1) as an int64 array."""
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
    token_min_logp: float = TOKEN_MIN_LOGP,
    beam_prune_logp: float = BEAM_PRUNE_LOGP,
) -> np.ndarray:
    """The most probable label sequence of one utterance's ``(T, V)`` log-probabilities.

    Each prefix keeps two scores: the log-probability of the alignments ending in a blank and
    of those ending in its last label; the ``beam_width`` best prefixes survive each frame.
    Classes scoring below ``token_min_logp`` in a frame (except that frame's best) are not
    extended, and prefixes scoring ``beam_prune_logp`` below the frame's best are dropped.
    Returns phoneme indices (class - 1).
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
    log_probs: torch.Tensor,
    lengths: torch.Tensor | np.ndarray,
    beam_width: int,
    reference: bool = False,
) -> list[np.ndarray]:
    """Beam search of every utterance of a ``(B, T, V)`` batch, on the host.

    flashlight-text where installed; ``reference`` (or its absence) runs our own search. Its
    token pruning keeps a frame's ``beam_width`` best classes, where ours keeps those within
    ``TOKEN_MIN_LOGP``: on peaked scores both extend the same few.
    """
    scores = log_probs.float().log_softmax(-1).cpu().contiguous()
    lengths = np.asarray(lengths.cpu() if isinstance(lengths, torch.Tensor) else lengths)
    utterances = zip(scores, lengths.tolist(), strict=True)
    if reference or LexiconFreeDecoder is None:
        return [prefix_beam_search(s[:n].numpy(), beam_width) for s, n in utterances]
    options = LexiconFreeDecoderOptions(
        beam_size=beam_width,
        beam_size_token=beam_width,
        beam_threshold=-BEAM_PRUNE_LOGP,
        lm_weight=0.0,
        sil_score=0.0,
        log_add=True,  # a prefix's alignments add up, as in ours
        criterion_type=CriterionType.CTC,
    )
    decoder = LexiconFreeDecoder(options, ZeroLM(), BLANK, BLANK, [])  # silence is the blank
    out = []
    for s, n in utterances:  # the best hypothesis's frame-level path, blank-framed
        path = decoder.decode(s.data_ptr(), n, s.shape[-1])[0].tokens
        out.append(np.array([c - 1 for c, _ in itertools.groupby(path) if c != BLANK], np.int64))
    return out


def to_text(sequences: list[np.ndarray], codes: np.ndarray, sep: str = "") -> list[str]:
    """Phoneme-index sequences as strings of ``codes`` (one character each, or symbols)."""
    return [sep.join(codes[seq].tolist()) for seq in sequences]
