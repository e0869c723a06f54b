"""The seeds' simplified VGG for 32x32 images: Conv3x3-BN-ReLU blocks between 3x3/2 max-pools.

    64 | pool | 128 | pool | 256, 256 | pool | 512, 512 | pool | 512, 512 | pool | linear 512 -> C

Five stride-2 pools take 32x32 down to 1x1, so the head is a single linear layer on 512 features.
For other input sizes the last feature map is average-pooled to 1x1 first (a no-op at 32x32).
"""

from __future__ import annotations

import torch
from torch import nn

# Channel widths per stage; a max-pool follows every stage.
VGG_STAGES: tuple[tuple[int, ...], ...] = ((64,), (128,), (256, 256), (512, 512), (512, 512))


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """Conv3x3 (stride 1, pad 1, no bias: BN supplies the shift) -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ConvNet(nn.Module):
    """Simplified VGG backbone (the seeds' ConvNet) for (C, H, W) images."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        stages: tuple[tuple[int, ...], ...] = VGG_STAGES,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"ConvNet expects input_shape (C, H, W), got {tuple(input_shape)}")
        layers: list[nn.Module] = []
        c_in = input_shape[0]
        for widths in stages:
            for c_out in widths:
                layers.append(conv_bn_relu(c_in, c_out))
                c_in = c_out
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))
