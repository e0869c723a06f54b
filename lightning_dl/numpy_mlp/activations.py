"""Element-wise activations with hand-written derivatives (no parameters)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from lightning_dl.numpy_mlp.modules import Module
from lightning_dl.numpy_mlp.special import erf


class Identity(Module):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout


class ReLU(Module):
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return np.where(self.mask, x, 0.0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self.mask, dout, 0.0)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return np.where(self.mask, x, self.negative_slope * x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self.mask, dout, self.negative_slope * dout)


class ELU(Module):
    """x for x > 0, alpha * (exp(x) - 1) otherwise; expm1 of min(x, 0) never overflows."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        self.neg = self.alpha * np.expm1(np.minimum(x, 0.0))
        return np.where(self.mask, x, self.neg)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self.mask, dout, dout * (self.neg + self.alpha))


class Sigmoid(Module):
    """1 / (1 + exp(-x)) computed as (1 + tanh(x / 2)) / 2, which cannot overflow."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = 0.5 * (1.0 + np.tanh(0.5 * x))
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.out * (1.0 - self.out)


class Tanh(Module):
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1.0 - self.out * self.out)


class GELU(Module):
    """x * Phi(x), Phi the standard normal CDF (``nn.GELU()``); ``approximate="tanh"`` uses
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) instead (``nn.GELU(approximate="tanh")``).

    Derivatives: Phi(x) + x phi(x) exactly; for the tanh form, that of its own formula.
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        if self.approximate == "tanh":
            self.t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
            return 0.5 * x * (1.0 + self.t)
        self.cdf = 0.5 * (1.0 + erf(x * (1 / math.sqrt(2))))
        return x * self.cdf

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x = self.x
        if self.approximate == "tanh":
            slope = math.sqrt(2 / math.pi) * (1.0 + 3 * 0.044715 * x * x)
            return dout * (0.5 * (1.0 + self.t) + 0.5 * x * (1.0 - self.t * self.t) * slope)
        pdf = np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return dout * (self.cdf + x * pdf)


ACTIVATIONS: dict[str, Callable[[], Module]] = {
    "identity": Identity,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "gelu": GELU,
    "gelu_tanh": partial(GELU, approximate="tanh"),
}
