"""The seeds' simplified VGG: layout, output shape and parameter count."""

import pytest
import torch
from torch import nn

from lightning_dl.models.convnet import ConvNet


def expected_param_count(in_ch: int, num_classes: int) -> int:
    """Conv3x3 (no bias) + BN (scale, shift) per block, then linear 512 -> classes."""
    widths = [64, 128, 256, 256, 512, 512, 512, 512]
    total, c_in = 0, in_ch
    for c_out in widths:
        total += c_in * c_out * 9 + 2 * c_out
        c_in = c_out
    return total + 512 * num_classes + num_classes


def test_output_shape_and_param_count():
    model = ConvNet((3, 32, 32), 10)
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    assert sum(p.numel() for p in model.parameters()) == expected_param_count(3, 10)
    assert expected_param_count(3, 10) == 9_228_362  # 9,217,728 conv + 5,504 BN + 5,130 linear


def test_layout_matches_the_seed():
    model = ConvNet((3, 32, 32), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert all((c.kernel_size, c.stride, c.padding) == ((3, 3), (1, 1), (1, 1)) for c in convs)
    assert len(pools) == 5
    assert all((p.kernel_size, p.stride, p.padding) == (3, 2, 1) for p in pools)
    assert model.features(torch.zeros(1, 3, 32, 32)).shape == (1, 512, 1, 1)
    assert model.head.in_features == 512 and model.head.out_features == 10


def test_other_input_shapes_and_gradients():
    model = ConvNet((1, 28, 28), 7)
    x = torch.randn(2, 1, 28, 28)
    loss = model(x).logsumexp(1).sum()
    loss.backward()
    assert model(x).shape == (2, 7)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == expected_param_count(1, 7)


def test_rejects_flat_input_shape():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        ConvNet((784,), 10)
