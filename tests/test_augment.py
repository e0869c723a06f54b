"""Batched on-device augmentation equals its per-sample definition: images and frame windows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from data_modules.batches import augment


def test_random_crop_is_a_crop_of_the_padded_image():
    torch.manual_seed(0)
    images = torch.randint(1, 255, (16, 3, 8, 8), dtype=torch.uint8)
    out = augment.random_crop(images, padding=2)
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = F.pad(images, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(images)):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert matches, f"image {i} is not a crop of its padded input"
        offsets.add(matches[0])
    assert len(offsets) > 3  # offsets really vary across the batch


def test_random_hflip_flips_about_half():
    torch.manual_seed(0)
    images = torch.arange(512 * 4, dtype=torch.float32).reshape(512, 1, 2, 2)
    out = augment.random_hflip(images)
    flipped = torch.tensor([torch.equal(o, x.flip(2)) for o, x in zip(out, images, strict=True)])
    kept = torch.tensor([torch.equal(o, x) for o, x in zip(out, images, strict=True)])
    assert bool((flipped ^ kept).all())
    assert 200 < int(flipped.sum()) < 312


def test_normalize_matches_reference():
    images = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.6, 0.7])
    expected = (images.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    torch.testing.assert_close(augment.normalize(images, mean, std), expected)


def _runs(mask: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor."""
    edges = torch.diff(torch.cat([torch.zeros(1), mask.float(), torch.zeros(1)]))
    starts, ends = (edges == 1).nonzero().flatten(), (edges == -1).nonzero().flatten()
    return (ends - starts).tolist()


def test_mask_frames_zeroes_one_band_and_one_span_per_window():
    windows = torch.randn(400, 25, 40) + 5.0  # no zeros of their own
    out = augment.mask_frames(
        windows, freq_mask=6, time_mask=4, p=1.0, generator=torch.Generator().manual_seed(0)
    )
    assert out.shape == windows.shape and out.dtype == windows.dtype
    zero = out == 0
    kept = ~zero
    assert torch.equal(out[kept], windows[kept])  # everything else untouched
    bands, spans = [], []
    for z in zero:
        band = z.all(dim=0)  # (40,) features zeroed in every frame
        span = z.all(dim=1)  # (25,) frames zeroed in every feature
        assert torch.equal(z, band[None, :] | span[:, None])  # the zeros are exactly those
        bands += _runs(band)
        spans += _runs(span)
    assert max(bands) <= 6 and max(spans) <= 4
    assert set(bands) == {1, 2, 3, 4, 5, 6} and set(spans) == {1, 2, 3, 4}  # every width drawn


def test_mask_frames_probability_and_seeding():
    windows = torch.randn(2000, 9, 13) + 5.0

    def masked(p, seed):
        return augment.mask_frames(windows, 3, 2, p, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(masked(0.0, 0), windows) and torch.equal(
        augment.mask_frames(windows, 0, 0), windows
    )
    half = masked(0.5, 1)
    touched = (half == 0).flatten(1).any(dim=1).float().mean().item()
    assert 0.4 < touched < 0.5  # p=0.5, less the windows that drew widths of zero
    assert torch.equal(masked(0.5, 1), half) and not torch.equal(masked(0.5, 2), half)
    torch.manual_seed(3)  # without a generator: the device's default one, which ExactResume seeds
    a = augment.mask_frames(windows, 3, 2, 0.5)
    torch.manual_seed(3)
    assert torch.equal(augment.mask_frames(windows, 3, 2, 0.5), a)


# -- vocal-tract-length perturbation ------------------------------------------------------------
def _dct(bands: int, ceps: int) -> torch.Tensor:
    from data_modules.speech.demo_corpus.features import dct_matrix

    return torch.from_numpy(dct_matrix(bands, ceps)).float()


def test_vtlp_is_the_identity_at_factor_one():
    ones = torch.ones(6)
    assert torch.equal(augment.vtlp_sources(ones, 40), torch.arange(40.0).expand(6, 40))
    mel = torch.randn(6, 7, 40)
    assert torch.equal(augment.warp_windows(mel, ones), mel)  # bands: bit for bit
    ceps = torch.randn(6, 7, 39)  # libriphone: 13 cepstra, deltas, delta-deltas
    warped = augment.warp_windows(ceps, ones, _dct(40, 13), blocks=3, scale=torch.rand(39) + 0.5)
    torch.testing.assert_close(warped, ceps, atol=1e-5, rtol=1e-5)  # inverse DCT and back


def test_vtlp_warp_is_monotone_and_moves_the_spectrum_the_right_way():
    alpha = torch.linspace(0.8, 1.2, 9)
    sources = augment.vtlp_sources(alpha, 40)
    assert bool((sources.diff(dim=1) >= 0).all())  # every warp keeps the band order
    assert bool((sources.diff(dim=0) <= 1e-6).all())  # larger alpha reads lower bands
    assert sources[0, 10] > 10.5 and sources[-1, 10] < 9.5  # ... by a band or more mid-range
    assert bool(((sources[:, -1] - 39).abs() < 0.5).all())  # Nyquist is fixed: the top barely moves
    rising = torch.cumsum(torch.rand(9, 3, 40) + 0.01, dim=2)  # increasing along the bands
    assert bool((augment.warp_windows(rising, alpha).diff(dim=2) >= 0).all())


def test_vtlp_keeps_shapes_dtypes_and_draws_from_the_seeded_generator():
    for dtype in (torch.float32, torch.bfloat16):
        for x, kwargs in (
            (torch.randn(64, 11, 40, dtype=dtype), {}),
            (torch.randn(64, 11, 28, dtype=dtype), {"cepstra": _dct(40, 28)}),
            (torch.randn(64, 11, 39, dtype=dtype), {"cepstra": _dct(40, 13), "blocks": 3}),
        ):
            out = augment.vtlp(x, 0.1, **kwargs)
            assert out.shape == x.shape and out.dtype == x.dtype
            assert not torch.equal(out, x)
    x = torch.randn(64, 11, 40)
    assert torch.equal(augment.vtlp(x, 0.0), x)
    torch.manual_seed(5)  # the device's default generator, which ExactResume reseeds per batch
    first = augment.vtlp(x, 0.1)
    torch.manual_seed(5)
    assert torch.equal(augment.vtlp(x, 0.1), first)
    assert not torch.equal(augment.vtlp(x, 0.1), first)
