"""A Transformer encoder-decoder for speech (the HW4P2 handout's model since 2023).

    (B, T, D) -> [Conv1d stride 2 -> GELU] x 2 -> + sinusoids -> pre-norm encoder blocks
    tokens -> embedding + sinusoids -> causal decoder blocks (self, cross, MLP) -> Linear

The convolutions cut the frames by 4 (attention's cost is quadratic in them). Keys at padded
frames are masked out of every softmax; the decoder's self-attention is causal, and
``step`` keeps each layer's keys and values (the cache), so decoding one token costs one row.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lightning_dl.models.las import State, masked_softmax, padding_mask


def sinusoids(start: int, length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Positions ``start .. start + length`` as ``(length, dim)`` sines and cosines."""
    position = torch.arange(start, start + length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(10000.0) / dim))
    return torch.cat([torch.sin(position * rate), torch.cos(position * rate)], -1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor):
    """Multi-head attention of ``(B, h, Q, d)`` queries; ``mask`` True where a key is seen."""
    weights = masked_softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, mask)
    return weights @ v, weights


class Block(nn.Module):
    """Pre-norm self-attention (optionally causal, cached), cross-attention, MLP."""

    def __init__(self, dim: int, heads: int, dropout: float, cross: bool) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.qkv, self.proj = (
            nn.LayerNorm(dim),
            nn.Linear(dim, 3 * dim),
            nn.Linear(dim, dim),
        )
        if cross:
            self.norm2, self.q, self.kv = (
                nn.LayerNorm(dim),
                nn.Linear(dim, dim),
                nn.Linear(dim, 2 * dim),
            )
            self.cross_proj = nn.Linear(dim, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, n * dim)`` -> ``(n, B, heads, L, dim / heads)``."""
        b, length, width = x.shape
        dim = self.proj.in_features
        return x.view(b, length, width // dim, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)

    def merge(self, y: torch.Tensor) -> torch.Tensor:
        return y.transpose(1, 2).flatten(2)

    def memory(self, memory: torch.Tensor) -> torch.Tensor:
        """Cross-attention keys and values ``(2, B, heads, S, d)`` of the encoder's output."""
        return self.split(self.kv(memory))

    def forward(self, x, mask, past=None, memory_kv=None, memory_mask=None):
        """``x`` after the block, this layer's self-attention keys/values, cross weights."""
        q, k, v = self.split(self.qkv(self.norm1(x)))
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        x = x + self.dropout(self.proj(self.merge(attend(q, k, v, mask)[0])))
        weights = None
        if memory_kv is not None:
            y, weights = attend(self.split(self.q(self.norm2(x)))[0], *memory_kv, memory_mask)
            x = x + self.dropout(self.cross_proj(self.merge(y)))
        return x + self.dropout(self.mlp(self.norm3(x))), torch.stack([k, v]), weights


class Transformer(nn.Module):
    """``(B, T, input_dim)`` utterances -> ``vocab_size`` scores per output token."""

    moving_state = 1  # the decoder state's entries that change per step (the cache)

    def __init__(
        self,
        input_dim: int,
        vocab_size: int,
        *,
        dim: int = 256,
        heads: int = 4,
        encoder_layers: int = 6,
        decoder_layers: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if heads < 1 or dim < 2 or dim % heads or dim % 2:
            raise ValueError(f"dim={dim} must be even and divisible by heads={heads}")
        if min(encoder_layers, decoder_layers) < 1:
            raise ValueError("encoder_layers and decoder_layers must be at least 1")
        self.front = nn.ModuleList(
            [nn.Conv1d(input_dim, dim, 3, 2, 1), nn.Conv1d(dim, dim, 3, 2, 1)]
        )
        self.encoder = nn.ModuleList(
            Block(dim, heads, dropout, False) for _ in range(encoder_layers)
        )
        self.decoder = nn.ModuleList(
            Block(dim, heads, dropout, True) for _ in range(decoder_layers)
        )
        self.encoder_norm, self.norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.embed, self.head = nn.Embedding(vocab_size, dim), nn.Linear(dim, vocab_size)
        self.dropout, self.encoder_dim = nn.Dropout(dropout), dim

    def output_lengths(self, lengths: np.ndarray) -> np.ndarray:
        return (np.asarray(lengths) - 1) // 2 // 2 + 1

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, host_lengths: np.ndarray
    ) -> tuple[torch.Tensor, np.ndarray]:
        """The encoder's ``(B, S, dim)`` outputs and their lengths (a host array)."""
        h = x.transpose(1, 2)
        for conv in self.front:  # zero the padding first: each conv then sees what it would alone
            h = F.gelu(conv(h * padding_mask(lengths, h.shape[-1])[:, None]))
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
        mask = padding_mask(lengths, h.shape[-1])
        h = self.dropout(h.transpose(1, 2) + sinusoids(0, h.shape[-1], h.shape[1], h.device))
        for block in self.encoder:
            h = block(h, mask[:, None, None])[0]
        return self.encoder_norm(h) * mask[..., None], self.output_lengths(host_lengths)

    def _run(self, tokens, start, mask, memory_kv, memory_mask, past=None):
        x = self.embed(tokens) * math.sqrt(self.encoder_dim)
        x = self.dropout(x + sinusoids(start, tokens.shape[1], x.shape[-1], x.device))
        cache = []
        for i, block in enumerate(self.decoder):
            layer_past = None if past is None else past[:, :, i].transpose(0, 1)
            x, kv, weights = block(
                x, mask, layer_past, memory_kv[:, :, i].transpose(0, 1), memory_mask
            )
            cache.append(kv)
        return self.head(self.norm(x)), torch.stack(cache, 2), weights.mean(1)

    def start(self, memory: torch.Tensor, mask: torch.Tensor) -> State:
        memory_kv = torch.stack(
            [block.memory(memory) for block in self.decoder], 2
        )  # (2, B, n, ...)
        past = memory_kv[..., :0, :]  # an empty self-attention cache
        return past.transpose(0, 1), memory_kv.transpose(0, 1), mask

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State, torch.Tensor]:
        """Scores ``(B, V)`` after ``tokens`` ``(B,)``, the next state, the cross weights."""
        past, memory_kv, mask = state
        scores, cache, weights = self._run(
            tokens[:, None], past.shape[-2], mask.new_ones(()), memory_kv, mask[:, None, None], past
        )
        return scores[:, 0], (cache.transpose(0, 1), memory_kv, mask), weights[:, 0]

    def decode(
        self, memory: torch.Tensor, mask: torch.Tensor, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced scores ``(B, L, V)`` and last-layer cross weights ``(B, L, S)``."""
        memory_kv = self.start(memory, mask)[1]
        n = inputs.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=inputs.device).tril()
        scores, _, weights = self._run(inputs, 0, causal, memory_kv, mask[:, None, None])
        return scores, weights
