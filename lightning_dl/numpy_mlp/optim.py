"""Optimizer objects over a model's parameters, as in the CMU 11-785 handout: ``SGD(model, lr,
momentum)`` and ``Adam(model, lr)``, each with ``step()`` and ``zero_grad()``.

A model is anything with ``layers`` (an MLP), a list of modules, or one module. Parameters and
gradients are looked up by name at every step, so a module whose arrays were replaced is still
updated; state (velocity, moments) is kept per parameter. The updates are PyTorch's
(``torch.optim.SGD``, dampening 0, no Nesterov; ``torch.optim.Adam``, no AMSGrad).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lightning_dl.numpy_mlp.modules import Module


def parameter_slots(model: object) -> list[tuple[Module, str]]:
    """(module, parameter name) for every parameter of ``model``, in layer order."""
    if isinstance(model, Module):
        layers: Sequence[Module] = [model]
    else:
        layers = getattr(model, "layers", model)
    return [(layer, name) for layer in layers for name in layer.params]


class Optimizer:
    def __init__(self, model: object, lr: float) -> None:
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        self.lr = lr
        self.slots = parameter_slots(model)
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.slots]

    def zero_grad(self) -> None:
        for layer, name in self.slots:
            layer.grads[name].fill(0.0)

    def step(self) -> None:
        for (layer, name), state in zip(self.slots, self.state, strict=True):
            self.update(layer.params[name], layer.grads[name], state)

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * v with v = momentum * v + g (v = g without momentum), PyTorch's rule."""

    def __init__(self, model: object, lr: float = 0.1, momentum: float = 0.0) -> None:
        super().__init__(model, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        if self.momentum == 0.0:
            param -= self.lr * grad
            return
        v = state.setdefault("velocity", np.zeros_like(param))
        v *= self.momentum
        v += grad
        param -= self.lr * v


class Adam(Optimizer):
    """Adam with bias correction, as ``torch.optim.Adam``: with t the step count,
    m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    """

    def __init__(
        self,
        model: object,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(model, lr)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas, self.eps, self.t = betas, eps, 0

    def step(self) -> None:
        self.t += 1
        super().step()

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        b1, b2 = self.betas
        m = state.setdefault("exp_avg", np.zeros_like(param))
        v = state.setdefault("exp_avg_sq", np.zeros_like(param))
        m *= b1
        m += (1.0 - b1) * grad
        v *= b2
        v += (1.0 - b2) * grad * grad
        denom = np.sqrt(v) / np.sqrt(1.0 - b2**self.t) + self.eps
        param -= (self.lr / (1.0 - b1**self.t)) * m / denom
