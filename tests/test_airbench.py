"""AirbenchNet: shapes, the data-initialised whitening stem, and what trains."""

import torch

from lightning_dl.models.airbench import AirbenchNet


def correlated_images(n: int = 64) -> torch.Tensor:
    torch.manual_seed(0)
    base = torch.randn(n, 1, 32, 32)
    noise = torch.randn(n, 2, 32, 32)
    return torch.cat([base, 0.5 * base + noise[:, :1], 3 * noise[:, 1:]], 1)


def test_output_shape_and_widths():
    model = AirbenchNet((3, 32, 32), 10, widths=(16, 32, 64))
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    assert model.head.in_features == 64 and model.whiten.out_channels == 24


def test_first_training_batch_whitens_the_stem():
    model = AirbenchNet((3, 32, 32), 10, widths=(16, 32, 64), whiten_eps=1e-6).train()
    x = correlated_images()
    assert not model.whiten_ready
    model(x)
    assert model.whiten_ready
    with torch.no_grad():
        out = model.whiten(x)[:, :12] - model.whiten.bias[:12, None, None]
    cov = torch.cov(out.permute(1, 0, 2, 3).reshape(12, -1))
    torch.testing.assert_close(cov, torch.eye(12), atol=0.02, rtol=0)
    w = model.whiten.weight.clone()
    model(torch.randn(8, 3, 32, 32))  # later batches leave it alone
    assert torch.equal(model.whiten.weight, w)
    restored = AirbenchNet((3, 32, 32), 10, widths=(16, 32, 64))
    restored.load_state_dict(model.state_dict())
    assert restored.whiten_ready and torch.equal(restored.whiten.weight, w)


def test_eval_mode_does_not_initialise():
    model = AirbenchNet((3, 32, 32), 10).eval()
    model(correlated_images(4))
    assert not model.whiten_ready


def test_frozen_tensors_get_no_gradient():
    model = AirbenchNet((3, 32, 32), 10, widths=(16, 32, 64))
    model(correlated_images(8)).sum().backward()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "whiten.weight" in frozen and "layers.1.bn1.weight" in frozen
    assert all(model.get_parameter(n).grad is None for n in frozen)
    assert model.head.weight.grad is not None and model.whiten.bias.grad is not None
