"""Element-wise activations with hand-written derivatives (no parameters)."""

from __future__ import annotations

import numpy as np

from lightning_dl.numpy_mlp.modules import Module


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


ACTIVATIONS: dict[str, type[Module]] = {
    "identity": Identity,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
}
