"""Input validation and precision shared by the custom normalisation layers."""

from __future__ import annotations

import torch


def check_features(x: torch.Tensor, num_features: int, layer: str) -> None:
    """Require a (batch, features) tensor whose feature count matches the layer."""
    if x.dim() != 2:
        raise ValueError(
            f"{layer} expects input of shape (batch, {num_features}), got rank {x.dim()} "
            f"tensor of shape {tuple(x.shape)}"
        )
    if x.shape[1] != num_features:
        raise ValueError(
            f"{layer} was built for {num_features} features, got input of shape "
            f"{tuple(x.shape)} ({x.shape[1]} features)"
        )


def statistics_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the statistics are computed in: fp32 for bf16/fp16 activations (under autocast),
    as PyTorch's own norms do; in bf16, ``x - mean`` loses the features' small deviations from a
    large mean, and the gradients with them."""
    return torch.float32 if x.dtype in (torch.bfloat16, torch.float16) else x.dtype
