"""Listen, Attend and Spell (Chan et al., 2016): a pyramidal BiLSTM listener, an LSTM speller.

    listener: (B, T, D) -> BiLSTM -> [join frame pairs -> BiLSTM] x pyramid  (B, T / 2^p, 2H)
    speller:  [previous token, previous context] -> LSTM cells -> attention -> Linear -> scores

Each pyramid layer halves the frames, so attention looks over fewer steps and the listener's
rate nears the characters'. ``attention: dot`` scores projected keys against the query;
``location`` (Chorowski et al., 2015) adds a convolution of the previous weights, which keeps an
alignment moving forward. Padding is masked out of every softmax and never enters the LSTMs
(:class:`~lightning_dl.models.conv_bilstm.BiLSTM`). The decoder interface (``start``, ``step``,
``decode``) is the one :mod:`lightning_dl.tasks.seq2seq` drives for both backbones.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lightning_dl.models.conv_bilstm import BiLSTM

State = tuple[torch.Tensor, ...]  # every entry batch-first, so that beams reorder by index


def padding_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, width)``: True inside each sequence."""
    return torch.arange(width, device=lengths.device) < lengths[:, None]


def masked_softmax(energy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return energy.float().masked_fill(~mask, -math.inf).softmax(-1).to(energy.dtype)


class Attention(nn.Module):
    def __init__(self, query_dim: int, key_dim: int, dim: int, kind: str, kernel: int) -> None:
        super().__init__()
        if kind not in ("dot", "location"):
            raise ValueError(f"attention={kind!r}, expected 'dot' or 'location'")
        self.kind, self.scale = kind, dim**-0.5
        self.query, self.key = nn.Linear(query_dim, dim), nn.Linear(key_dim, dim)
        self.value = nn.Linear(key_dim, dim)
        if kind == "location":
            self.conv = nn.Conv1d(1, 8, kernel, padding=kernel // 2, bias=False)
            self.location = nn.Linear(8, dim, bias=False)
            self.energy = nn.Linear(dim, 1)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask, previous
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The context ``(B, dim)`` and the weights ``(B, S)`` of one decoder step."""
        q = self.query(query)
        if self.kind == "dot":
            energy = (keys @ q[:, :, None]).squeeze(-1) * self.scale
        else:
            where = self.location(self.conv(previous[:, None]).transpose(1, 2))
            energy = self.energy(torch.tanh(keys + q[:, None] + where)).squeeze(-1)
        weights = masked_softmax(energy, mask)
        return (weights[:, None] @ values).squeeze(1), weights


class LAS(nn.Module):
    """``(B, T, input_dim)`` utterances -> ``vocab_size`` scores per output token."""

    moving_state = 4  # the decoder state's entries that change per step (h, c, context, weights)

    def __init__(
        self,
        input_dim: int,
        vocab_size: int,
        *,
        hidden: int = 256,
        pyramid: int = 3,
        speller_hidden: int = 512,
        speller_layers: int = 2,
        attention: Literal["dot", "location"] = "dot",
        attention_dim: int = 128,
        location_kernel: int = 31,
        dropout: float = 0.1,
        packed: bool = False,
    ) -> None:
        super().__init__()
        if min(hidden, speller_hidden, speller_layers, attention_dim, location_kernel) < 1:
            raise ValueError("hidden, speller_hidden, speller_layers, attention_dim and "
                             "location_kernel must be at least 1")  # fmt: skip
        if pyramid < 0:
            raise ValueError(f"pyramid={pyramid}: the number of halving layers, at least 0")
        self.first = BiLSTM(input_dim, hidden, 1, 0.0, packed)
        self.pyramid = nn.ModuleList(
            BiLSTM(4 * hidden, hidden, 1, 0.0, packed) for _ in range(pyramid)
        )
        self.encoder_dim = 2 * hidden
        self.embed = nn.Embedding(vocab_size, speller_hidden)
        sizes = [speller_hidden + attention_dim] + [speller_hidden] * (speller_layers - 1)
        self.cells = nn.ModuleList(nn.LSTMCell(n, speller_hidden) for n in sizes)
        self.attention = Attention(
            speller_hidden, 2 * hidden, attention_dim, attention, location_kernel
        )
        self.head = nn.Linear(speller_hidden + attention_dim, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def output_lengths(self, lengths: np.ndarray) -> np.ndarray:
        return -(-np.asarray(lengths) // 2 ** len(self.pyramid))  # ceil: no utterance vanishes

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, host_lengths: np.ndarray
    ) -> tuple[torch.Tensor, np.ndarray]:
        """The listener's ``(B, S, encoder_dim)`` outputs (zero past each length) and lengths."""
        h = self.first(x * padding_mask(lengths, x.shape[1])[..., None], lengths, host_lengths)
        for layer in self.pyramid:  # an odd last frame pairs with a zero one
            h = F.pad(h, (0, 0, 0, h.shape[1] % 2))
            h = self.dropout(h.reshape(h.shape[0], h.shape[1] // 2, -1))
            lengths, host_lengths = (lengths + 1) // 2, (np.asarray(host_lengths) + 1) // 2
            h = layer(h, lengths, host_lengths)
        return h, host_lengths

    def start(self, memory: torch.Tensor, mask: torch.Tensor) -> State:
        b, n, size = memory.shape[0], len(self.cells), self.cells[0].hidden_size
        h = memory.new_zeros(b, n, size)
        first = torch.zeros_like(mask, dtype=memory.dtype)
        first[:, 0] = 1  # location attention's "previous weights" before the first step
        keys, values = self.attention.key(memory), self.attention.value(memory)
        return h, h.clone(), values.new_zeros(b, values.shape[-1]), first, keys, values, mask

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State, torch.Tensor]:
        """Scores ``(B, V)`` after ``tokens`` ``(B,)``, the next state, the weights ``(B, S)``."""
        h, c, context, weights, keys, values, mask = state
        x, hs, cs = torch.cat([self.embed(tokens), context], -1), [], []
        for i, cell in enumerate(self.cells):
            hi, ci = cell(x, (h[:, i], c[:, i]))
            hs, cs, x = hs + [hi], cs + [ci], self.dropout(hi)
        context, weights = self.attention(x, keys, values, mask, weights)
        state = (torch.stack(hs, 1), torch.stack(cs, 1), context, weights, keys, values, mask)
        return self.head(torch.cat([x, context], -1)), state, weights

    def decode(
        self, memory: torch.Tensor, mask: torch.Tensor, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced scores ``(B, L, V)`` and attention weights ``(B, L, S)``."""
        state, scores, weights = self.start(memory, mask), [], []
        for t in range(inputs.shape[1]):
            s, state, w = self.step(state, inputs[:, t])
            scores, weights = scores + [s], weights + [w]
        return torch.stack(scores, 1), torch.stack(weights, 1)
