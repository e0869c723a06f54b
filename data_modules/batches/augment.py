"""Batched augmentation on the training device: whole batches, a few vectorised operations,
no device tensor read back. Random numbers come from ``generator`` or the device's default one,
which exact resume reseeds before every training batch."""

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
    """SpecAugment-style masking of windows ``(B, 2k+1, D)``: with probability ``p`` a window
    gets a band of ``U{0..freq_mask}`` features and a span of ``U{0..time_mask}`` frames set to 0
    (the mean of normalised features); one ``torch.rand`` draws everything."""
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


VTLP_HIGH_HZ = 4800.0  # Jaitly & Hinton (2013): the warp's knee for 16 kHz speech
MEL_RANGE_HZ = (20.0, 8000.0)  # the bands' range: Kaldi fbank, the demo corpus (features.py)


def _mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


def _hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * torch.expm1(mel / 1127.0)


def vtlp_sources(
    alpha: torch.Tensor,
    bands: int,
    mel_range_hz: tuple[float, float] = MEL_RANGE_HZ,
    high_hz: float = VTLP_HIGH_HZ,
) -> torch.Tensor:
    """For each warp ``alpha`` ``(B,)``, the fractional band ``(B, bands)`` each band reads (Jaitly
    & Hinton 2013, eq. 1): ``f -> alpha * f`` below ``high_hz * min(alpha, 1) / alpha``, then linear
    so the top of ``mel_range_hz`` stays put. Monotone for every ``alpha > 0``; ``alpha = 1`` reads
    every band from itself exactly."""
    low, top = (float(v) for v in mel_range_hz)
    a = alpha.double()[:, None]
    ends = _mel(torch.tensor([low, top], dtype=torch.float64))
    edges = torch.linspace(*ends.tolist(), bands + 2, dtype=torch.float64, device=alpha.device)
    centres = edges[1:-1]
    g = _hz(centres)[None, :]
    knee_in = high_hz * a.clamp(max=1.0) / a  # f where the two pieces meet ...
    knee_out = high_hz * a.clamp(max=1.0)  # ... and where it lands
    above = top - (top - g) * (top - knee_in) / (top - knee_out)
    source_hz = torch.where(g <= knee_out, g / a, above)
    step = centres[1] - centres[0] if bands > 1 else centres.new_tensor(1.0)
    index = (_mel(source_hz.clamp(min=0.0)) - centres[0]) / step
    snapped = index.round()  # the mel <-> Hz round trip leaves ~1e-12: alpha = 1 is exact
    index = torch.where((index - snapped).abs() < 1e-6, snapped, index)
    return index.clamp(0, bands - 1).float()


def warp_matrix(sources: torch.Tensor) -> torch.Tensor:
    """``(B, F, F)`` linear interpolation at fractional bands ``sources (B, F)``: ``x @ W[b]``
    reads ``x`` at ``sources[b, j]`` into band ``j`` (the identity at whole bands)."""
    b, bands = sources.shape
    lo = sources.floor().clamp(max=max(bands - 2, 0)).long()
    frac = sources - lo
    hi = (lo + 1).clamp(max=bands - 1)
    w = sources.new_zeros(b, bands, bands)
    w.scatter_add_(1, lo[:, None, :], (1.0 - frac)[:, None, :])
    return w.scatter_add_(1, hi[:, None, :], frac[:, None, :])


def warp_windows(
    windows: torch.Tensor,
    alpha: torch.Tensor,
    cepstra: torch.Tensor | None = None,
    blocks: int = 1,
    scale: torch.Tensor | None = None,
    mel_range_hz: tuple[float, float] = MEL_RANGE_HZ,
) -> torch.Tensor:
    """Windows ``(B, 2k+1, D)``, the frequency axis of window ``i`` warped by ``alpha[i]``: log-mel
    bands interpolated, cepstra (``cepstra``: the ``(bands, C)`` DCT basis) in the mel domain, in
    ``blocks`` blocks of ``C`` (the warp is linear, so it commutes with deltas). ``scale`` undoes a
    per-dimension normalisation around it."""
    b, width, dim = windows.shape
    x = windows if scale is None else windows * scale
    if cepstra is None:  # one (F, F) interpolation per window: a batched matmul
        warped = x @ warp_matrix(vtlp_sources(alpha, dim, mel_range_hz)).to(x.dtype)
    else:  # to bands, warp, back to cepstra: one (C, C) matrix per window
        basis = cepstra.to(device=x.device, dtype=torch.float32)
        bands, c = basis.shape
        w = warp_matrix(vtlp_sources(alpha, bands, mel_range_hz))
        m = (basis.T @ w @ basis).to(x.dtype)  # (B, C, C)
        warped = (x.reshape(b, width * blocks, c) @ m).reshape(b, width, dim)
    return warped if scale is None else warped / scale


def vtlp(
    windows: torch.Tensor,
    max_warp: float,
    cepstra: torch.Tensor | None = None,
    blocks: int = 1,
    scale: torch.Tensor | None = None,
    mel_range_hz: tuple[float, float] = MEL_RANGE_HZ,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Vocal-tract-length perturbation: each window draws ``alpha ~ U[1 - max_warp, 1 +
    max_warp]`` and all its frames get the same warp, as one speaker's vocal tract would."""
    if max_warp <= 0:
        return windows
    u = torch.rand(windows.shape[0], device=windows.device, generator=generator)
    alpha = 1.0 + max_warp * (2.0 * u - 1.0)
    return warp_windows(windows, alpha, cepstra, blocks, scale, mel_range_hz)
