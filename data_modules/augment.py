"""Batched augmentation on the training device (the airbench approach).

Each function takes a whole batch (images ``(B, C, H, W)``, frame windows ``(B, 2k+1, D)``) and
does a few vectorised operations, so the training loop never touches single samples in Python
and never reads a device tensor back. Random numbers come from ``generator`` or else from the
device's default generator, which exact resume reseeds before every training batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(
    images: torch.Tensor, padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the original size at a random offset per image."""
    if padding <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b, 1), device=images.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), device=images.device, generator=generator)
    rows = (dy + torch.arange(h, device=images.device))[:, :, None]  # (B, H, 1)
    cols = (dx + torch.arange(w, device=images.device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    # Advanced indexing puts the indexed dims first: (B, H, W, C) -> back to (B, C, H, W).
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in 0..255) images -> float32 standardised per channel."""
    x = images.float().div_(255.0)
    return x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))


def mask_frames(
    windows: torch.Tensor,
    freq_mask: int = 0,
    time_mask: int = 0,
    p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SpecAugment-style masking of context windows ``(B, 2k+1, D)``, each window on its own.

    With probability ``p`` a window gets one band of ``f ~ U{0..freq_mask}`` consecutive
    features and one span of ``t ~ U{0..time_mask}`` consecutive frames set to 0 (the mean of
    normalised features), at uniformly drawn positions; the other windows are unchanged. One
    ``torch.rand`` call draws everything.
    """
    if (freq_mask <= 0 and time_mask <= 0) or p <= 0:
        return windows
    b, width, dim = windows.shape
    u = torch.rand(b, 5, device=windows.device, generator=generator)
    chosen = u[:, 0] < p

    def span(size: int, most: int, draw_width: torch.Tensor, draw_start: torch.Tensor):
        most = min(most, size)
        length = (draw_width * (most + 1)).long().clamp_(max=most)  # 0..most
        start = (draw_start * (size - length + 1)).long().clamp_(max=size - 1)
        where = torch.arange(size, device=windows.device)
        inside = (where >= start[:, None]) & (where < (start + length)[:, None])
        return inside & chosen[:, None]

    bands = span(dim, freq_mask, u[:, 1], u[:, 2])  # (B, D)
    frames = span(width, time_mask, u[:, 3], u[:, 4])  # (B, 2k+1)
    return windows.masked_fill(bands[:, None, :] | frames[:, :, None], 0.0)
