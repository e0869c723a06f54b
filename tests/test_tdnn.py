"""The frame-window TDNN backbone: shapes, receptive field, and a Conv1d that is one per frame."""

from __future__ import annotations

import pytest
import torch

from lightning_dl.models.mlp import MLP
from lightning_dl.models.tdnn import TDNN


def test_shapes_and_receptive_field():
    model = TDNN((25, 40), 138, channels=[64, 64, 32], kernel_sizes=[5, 3, 3], dilations=[1, 2, 3])
    assert model.receptive_field == 1 + 4 + 4 + 6
    x = torch.randn(8, 25, 40)
    assert model(x).shape == (8, 138)
    model.eval()
    assert model(x[:1]).shape == (1, 138)  # BatchNorm in eval works on one frame
    with pytest.raises(ValueError, match="span 15 frames, more than the window's 11"):
        TDNN((11, 40), 138, channels=[8, 8, 8], kernel_sizes=[5, 3, 3], dilations=[1, 2, 3])
    with pytest.raises(ValueError, match="windows of shape"):
        TDNN((1000,), 138)


def test_a_block_slides_one_filter_over_the_frames():
    """Shifting the window by one frame shifts the first block's output by one position."""
    model = TDNN((9, 6), 5, channels=[4], kernel_sizes=[3], dilations=[1], hidden=[]).eval()
    x = torch.randn(1, 10, 6)
    first = model.blocks(x[:, :9].transpose(1, 2))
    shifted = model.blocks(x[:, 1:].transpose(1, 2))
    torch.testing.assert_close(first[..., 1:], shifted[..., :-1])


def test_trains_and_matches_an_mlp_in_size_when_asked():
    torch.manual_seed(0)
    tdnn = TDNN((25, 40), 138, channels=[256, 256, 256], hidden=[512])
    mlp = MLP((25, 40), 138, hidden=[1024, 1024, 512], norm="batchnorm")
    ratio = tdnn.num_parameters() / sum(p.numel() for p in mlp.parameters())
    assert 0.5 < ratio < 2.0, ratio  # the defaults are comparable in size
    x, y = torch.randn(64, 25, 40), torch.randint(0, 138, (64,))
    opt = torch.optim.Adam(tdnn.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(tdnn(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]  # it fits a small batch
