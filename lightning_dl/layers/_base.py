"""What both custom norms share: the affine parameters, the input check and the precision."""

from __future__ import annotations

import torch
from torch import nn


class Norm(nn.Module):
    """gamma and beta over ``num_features``; ``forward`` checks the (batch, features) input."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Statistics in fp32 for bf16/fp16 input, as PyTorch's norms under autocast: in bf16,
        ``x - mean`` loses the features' small deviations from a large mean, and the gradients
        with them. The output is in x's dtype."""
        name, d = type(self).__name__, self.num_features
        if x.dim() != 2:
            raise ValueError(
                f"{name} expects input of shape (batch, {d}), got rank {x.dim()} tensor of "
                f"shape {tuple(x.shape)}"
            )
        if x.shape[1] != d:
            raise ValueError(
                f"{name} was built for {d} features, got input of shape {tuple(x.shape)} "
                f"({x.shape[1]} features)"
            )
        low = x.dtype in (torch.bfloat16, torch.float16)
        with torch.autocast(x.device.type, enabled=False):  # its matmuls would run in bf16
            return self._normalize(x.float() if low else x).to(x.dtype)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
