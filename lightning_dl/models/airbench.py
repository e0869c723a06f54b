"""A small fast CIFAR net after airbench94 (Keller Jordan, 2024), sized for CPUs.

    whiten 2x2 (fixed, from data) + GELU | group w1 | group w2 | group w3 | global maxpool | linear
    group(c_in, c_out):  y = GELU(BN(maxpool2(conv3x3(x))));  y = [y +] GELU(BN(conv3x3(y)))

``residual=True`` adds the skip around each group's second conv (airbench94 has none; the skip
makes the second conv start near the identity path and costs nothing).

Why each piece (from airbench's ablations): the frozen patch-whitening first layer gives the
later convs decorrelated inputs, so few epochs suffice; pooling inside each group keeps most
compute at low resolution; BatchNorm has no learned scale (the net is scale-invariant up to
the head, whose output is divided by ``head_scale``) and a high momentum since runs are short.
The whitening weights are computed from the first training batch the net sees (lazy,
data-dependent init, like LSUV), so the backbone needs no data at construction time.
"""

from __future__ import annotations

import torch
from torch import nn


class ShiftOnlyBN(nn.BatchNorm2d):
    """BatchNorm with a fixed unit scale (only the shift trains) and fast-moving statistics."""

    def __init__(self, c: int) -> None:
        super().__init__(c, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int, residual: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = ShiftOnlyBN(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = ShiftOnlyBN(c_out)
        self.act = nn.GELU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        y = self.act(self.bn2(self.conv2(x)))
        return x + y if self.residual else y


class AirbenchNet(nn.Module):
    """Fast CIFAR backbone; ``widths`` (64, 256, 256) is airbench94, the default is CPU-sized."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        widths: tuple[int, int, int] = (64, 128, 256),
        residual: bool = True,
        head_scale: float = 1 / 9,
        whiten_eps: float = 5e-4,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"AirbenchNet expects input_shape (C, H, W), got {tuple(input_shape)}")
        c = input_shape[0]
        self.whiten_eps, self.head_scale = whiten_eps, head_scale
        self.whiten = nn.Conv2d(c, 2 * c * 4, kernel_size=2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.register_buffer("whiten_ready", torch.tensor(False))
        self.layers = nn.Sequential(
            nn.GELU(),
            ConvGroup(2 * c * 4, widths[0], residual),
            ConvGroup(widths[0], widths[1], residual),
            ConvGroup(widths[1], widths[2], residual),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        with torch.no_grad():  # identity-like start for the first c_in filters, as airbench
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and m is not self.whiten:
                    nn.init.dirac_(m.weight[: m.in_channels])

    @torch.no_grad()
    def init_whitening(self, x: torch.Tensor) -> None:
        """Set the 2x2 stem to ZCA-like whitening of ``x``'s patches (+ its negation, for GELU)."""
        x = x.float()
        c = x.shape[1]
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1)  # (B, C, H-1, W-1, 2, 2)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        eigval, eigvec = torch.linalg.eigh(cov)  # ascending, (c*4,), (c*4, c*4)
        w = (eigvec.T / (eigval + self.whiten_eps).sqrt()[:, None]).reshape(c * 4, c, 2, 2)
        self.whiten.weight.copy_(torch.cat([w, -w]).to(self.whiten.weight.dtype))
        self.whiten.bias.zero_()
        self.whiten_ready.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.whiten_ready:
            with torch.autocast(x.device.type, enabled=False):
                self.init_whitening(x)
        return self.head(self.layers(self.whiten(x))) * self.head_scale
