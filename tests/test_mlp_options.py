"""MLP options the comparisons need: norms without affine, norm or dropout on chosen layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from data_modules.errors import UserInputError
from lightning_dl.models.mlp import MLP

# The state_dict keys of MLP(hidden=[16, 8], norm="batchnorm", dropout=0.1) before these options
# existed: checkpoints written then must keep loading (Flatten, then per hidden layer Linear,
# BatchNorm, ReLU, Dropout, then the output Linear).
OLD_KEYS = [
    "net.1.weight", "net.1.bias",
    "net.2.weight", "net.2.bias", "net.2.running_mean", "net.2.running_var",
    "net.2.num_batches_tracked",
    "net.5.weight", "net.5.bias",
    "net.6.weight", "net.6.bias", "net.6.running_mean", "net.6.running_var",
    "net.6.num_batches_tracked",
    "net.9.weight", "net.9.bias",
]  # fmt: skip


def test_defaults_keep_the_old_layers_and_state_dict_keys():
    model = MLP((12,), 3, hidden=[16, 8], norm="batchnorm", dropout=0.1)
    assert list(model.state_dict()) == OLD_KEYS
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Dropout",
                     "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]  # fmt: skip
    explicit = MLP((12,), 3, hidden=[16, 8], norm="batchnorm", dropout=0.1, norm_affine=True,
                   norm_layers=[0, 1], dropout_layers=[0, 1])  # fmt: skip
    explicit.load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize("norm", ["batchnorm", "layernorm"])
def test_norm_without_affine_has_no_scale_or_shift_and_normalises(norm):
    model = MLP((12,), 3, hidden=[16, 8], norm=norm, norm_affine=False)
    linear_params = sum(p.numel() for m in model.net if isinstance(m, nn.Linear)
                        for p in m.parameters())  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == linear_params
    norms = [m for m in model.net if isinstance(m, nn.BatchNorm1d | nn.LayerNorm)]
    assert len(norms) == 2
    assert all(m.weight is None and m.bias is None for m in norms)
    if norm == "batchnorm":  # running statistics are kept, so eval mode still works
        assert all(m.running_mean is not None for m in norms)
    x = torch.randn(64, 12) * 5 + 3
    h = model.net[2](model.net[1](model.net[0](x)))  # Flatten, Linear, norm
    dim = 0 if norm == "batchnorm" else 1
    torch.testing.assert_close(h.mean(dim), torch.zeros(16 if dim == 0 else 64), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        h.var(dim, unbiased=False), torch.ones(16 if dim == 0 else 64), atol=1e-3, rtol=0
    )


def test_norm_and_dropout_on_chosen_layers_only():
    model = MLP((12,), 3, hidden=[16, 8, 4], norm="batchnorm", norm_layers=[0],
                dropout=0.1, dropout_layers=[2])  # fmt: skip
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "ReLU",  # BN after the first only
                     "Linear", "ReLU",
                     "Linear", "ReLU", "Dropout",  # dropout after the last hidden layer only
                     "Linear"]  # fmt: skip
    assert model.net[2].num_features == 16
    assert model(torch.randn(5, 12)).shape == (5, 3)
    nothing = MLP((12,), 3, hidden=[16, 8], norm="batchnorm", norm_layers=[], dropout=0.5,
                  dropout_layers=[])  # fmt: skip
    assert [type(m).__name__ for m in nothing.net].count("Linear") == 3 and len(nothing.net) == 6


def test_bad_layer_choices_are_one_clear_error():
    with pytest.raises(UserInputError, match=r"norm_layers: layer index 2 does not exist; the "
                       r"MLP has 2 hidden layer\(s\), numbered 0..1"):  # fmt: skip
        MLP((4,), 2, hidden=[8, 8], norm="batchnorm", norm_layers=[2])
    with pytest.raises(UserInputError, match="dropout_layers: layer index -1 does not exist"):
        MLP((4,), 2, hidden=[8], dropout=0.1, dropout_layers=[-1])
    with pytest.raises(UserInputError, match="norm_affine: false is available for"):
        MLP((4,), 2, norm="custom_batchnorm", norm_affine=False)
    with pytest.raises(ValueError, match="unknown norm 'groupnorm'"):
        MLP((4,), 2, norm="groupnorm", norm_affine=False)
