"""Multi-layer perceptron backbone: [Linear -> Norm -> Activation -> Dropout] x N -> Linear."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

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


def _choice(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} '{name}'; expected one of {sorted(table)}")
    return table[name]


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
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for units in hidden:
            layers.append(nn.Linear(width, units))
            if norm != "none":
                layers.append(_choice(NORMS, norm, "norm")(units))
            layers.append(_choice(ACTIVATIONS, activation, "activation")())
            if dropout > 0:
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
