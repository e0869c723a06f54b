"""A frame-window convolutional backbone (TDNN-like): Conv1d over the 2k+1 frames, then an MLP.

A time-delay neural network (Waibel et al., 1989; the x-vector / Kaldi TDNN layers) slides the
same small filter over neighbouring frames, so it learns local spectral-temporal patterns once
instead of once per window position as an MLP over the flattened window does. Here the input is
one context window ``(B, 2k+1, D)``: features are the Conv1d channels, frames its length.
Each block is Conv1d (no padding, so the window shrinks by ``dilation * (kernel - 1)``) ->
BatchNorm1d -> activation -> dropout; the remaining frames are flattened into an MLP head.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_dl.models.mlp import ACTIVATIONS, Activation, _choice


class TDNNBlock(nn.Module):
    """Conv1d -> BatchNorm1d -> activation -> dropout over (B, channels, frames)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int,
        activation: Activation,
        dropout: float,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = _choice(ACTIVATIONS, activation, "activation")()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.norm(self.conv(x))))


class TDNN(nn.Module):
    """Context window ``(B, 2k+1, D)`` -> TDNN blocks -> flatten -> MLP head -> logits."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: list[int] = [256, 256, 256],  # noqa: B006 (jsonargparse shows list defaults)
        kernel_sizes: list[int] = [5, 3, 3],  # noqa: B006
        dilations: list[int] = [1, 2, 3],  # noqa: B006
        hidden: list[int] = [512],  # noqa: B006
        activation: Activation = "gelu",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(input_shape) != 2:
            raise ValueError(
                f"TDNN needs windows of shape (frames, features), got input_shape {input_shape}"
            )
        if not len(channels) == len(kernel_sizes) == len(dilations):
            raise ValueError(
                f"channels {channels}, kernel_sizes {kernel_sizes} and dilations {dilations} "
                "need one entry per block"
            )
        frames, features = input_shape
        blocks = []
        for out, kernel, dilation in zip(channels, kernel_sizes, dilations, strict=True):
            blocks.append(TDNNBlock(features, out, kernel, dilation, activation, dropout))
            frames -= dilation * (kernel - 1)
            features = out
        if frames < 1:
            span = sum(d * (k - 1) for k, d in zip(kernel_sizes, dilations, strict=True)) + 1
            raise ValueError(
                f"the TDNN blocks span {span} frames, more than the window's {input_shape[0]}: "
                "use a larger context or smaller kernels/dilations"
            )
        self.blocks = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.Flatten()]
        width = features * frames
        for units in hidden:
            head += [
                nn.Linear(width, units),
                nn.BatchNorm1d(units),
                _choice(ACTIVATIONS, activation, "activation")(),
            ]
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            width = units
        head.append(nn.Linear(width, num_classes))
        self.head = nn.Sequential(*head)
        self.receptive_field = input_shape[0] - frames + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # (B, frames, features) -> (B, features = channels, frames)
        return self.head(self.blocks(x))

    def num_parameters(self) -> int:
        return sum(math.prod(p.shape) for p in self.parameters())
