"""Batched on-device augmentation equals its per-image definition."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from data_modules import augment


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
