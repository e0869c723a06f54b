"""Multi-layer perceptron backbone: [Linear -> Norm -> Activation -> Dropout] x N -> Linear.

Norm and dropout go after every hidden Linear by default; ``norm_layers`` / ``dropout_layers``
name the hidden layers (0-based) that get them, e.g. ``norm_layers: [0]`` for BatchNorm after
the first Linear only. ``norm_affine: false`` drops the norm's learnable scale and shift. The
defaults build the plain stack, whose ``state_dict`` keys checkpoints rely on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from data_modules.errors import UserInputError
from lightning_dl.layers import CustomBatchNormManualModule, CustomLayerNormManualModule

Activation = Literal["relu", "elu", "leaky_relu", "tanh", "sigmoid", "gelu"]
Norm = Literal["none", "batchnorm", "layernorm", "custom_batchnorm", "custom_layernorm"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}

NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batchnorm": nn.BatchNorm1d,
    "layernorm": nn.LayerNorm,
    "custom_batchnorm": CustomBatchNormManualModule,
    "custom_layernorm": CustomLayerNormManualModule,
}

# The same norms without learnable affine parameters (the hand-written ones always have them).
NORMS_WITHOUT_AFFINE: dict[str, Callable[[int], nn.Module]] = {
    "batchnorm": lambda units: nn.BatchNorm1d(units, affine=False),
    "layernorm": lambda units: nn.LayerNorm(units, elementwise_affine=False),
}


def _choice(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} '{name}'; expected one of {sorted(table)}")
    return table[name]


def _chosen_layers(option: str, layers: list[int] | None, count: int) -> set[int]:
    """The hidden-layer indices ``option`` names (all when None), each checked to exist."""
    if layers is None:
        return set(range(count))
    for index in layers:
        if not 0 <= index < count:
            raise UserInputError(
                f"MLP {option}: layer index {index} does not exist; the MLP has {count} hidden "
                f"layer(s), numbered 0..{count - 1}"
            )
    return set(layers)


def _check_fits_in_memory(input_shape: tuple[int, ...], widths: list[int]) -> None:
    """Refuse a net whose training cannot fit the free memory (16 bytes a weight: fp32 weights,
    gradients and Adam's two moments): ``context: 100000`` makes a first layer of billions, which
    the OS would otherwise answer by killing the process without a word."""
    weights = sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
    try:  # MemAvailable counts the page cache the kernel would give back; not Linux: no check
        meminfo = Path("/proc/meminfo").read_text()
        free = int(re.search(r"MemAvailable:\s+(\d+) kB", meminfo)[1]) * 1024
    except (OSError, TypeError):
        return
    if 16 * weights > free:
        raise UserInputError(
            f"MLP: {weights / 1e9:.1f} B weights for an input of shape {tuple(input_shape)}: "
            f"training needs {16 * weights / 2**30:.0f} GiB, {free / 2**30:.0f} GiB are available"
        )


class MLP(nn.Module):
    """Flattens its input; ``init_std`` draws weights from N(0, std^2) with zero biases."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        hidden: list[int] = [256],  # noqa: B006 (jsonargparse shows list defaults)
        activation: Activation = "relu",
        norm: Norm = "none",
        dropout: float = 0.0,
        init_std: float | None = None,
        norm_affine: bool = True,
        norm_layers: list[int] | None = None,
        dropout_layers: list[int] | None = None,
    ) -> None:
        super().__init__()
        if any(size < 1 for size in hidden):
            raise UserInputError(f"MLP hidden={list(hidden)}: every layer needs at least 1 unit")
        if norm != "none":
            make_norm = _choice(NORMS, norm, "norm")
            if not norm_affine:
                if norm not in NORMS_WITHOUT_AFFINE:
                    raise UserInputError(
                        f"MLP norm_affine: false is available for {sorted(NORMS_WITHOUT_AFFINE)}"
                        f", not for '{norm}'"
                    )
                make_norm = NORMS_WITHOUT_AFFINE[norm]
        with_norm = _chosen_layers("norm_layers", norm_layers, len(hidden))
        with_dropout = _chosen_layers("dropout_layers", dropout_layers, len(hidden))
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        _check_fits_in_memory(input_shape, [width, *hidden, num_classes])
        for i, units in enumerate(hidden):
            layers.append(nn.Linear(width, units))
            if norm != "none" and i in with_norm:
                layers.append(make_norm(units))
            layers.append(_choice(ACTIVATIONS, activation, "activation")())
            if dropout > 0 and i in with_dropout:
                layers.append(nn.Dropout(dropout))
            width = units
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        if init_std is not None:
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=init_std)
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
