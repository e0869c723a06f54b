"""Input validation shared by the custom normalisation layers (clear errors, not stride crashes)."""

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
