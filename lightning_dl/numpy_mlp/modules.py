"""NumPy layers with hand-written backward passes (no autograd), in the style of CMU 11-785 HW1.

Every module caches in ``forward`` what its ``backward`` needs; ``backward(dout)`` returns the
gradient with respect to the module's input and *sets* the parameter gradients in ``grads``
(written in place, so the arrays keep their identity): the gradient of the last backward only,
as the CMU handout's ``dLdW`` is. Nothing accumulates, so ``zero_grads`` is never required; it
stays for the calling convention of both courses and of PyTorch. Arrays are (batch, features).
"""

from __future__ import annotations

import numpy as np


class Module:
    """Base: parameters and gradients live on the module as dicts keyed by name."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def zero_grads(self) -> None:
        for grad in self.grads.values():
            grad.fill(0.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)


class Linear(Module):
    """y = x @ W + b with W of shape (in, out) drawn from N(0, init_std^2) and b = 0.

    ``needs_input_grad = False`` (set by the MLP on its first layer) skips computing dL/dx,
    a third of the layer's backward work, which nothing upstream of the data would use.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        init_std: float,
        rng: np.random.Generator,
        dtype: np.dtype | type = np.float64,
    ) -> None:
        super().__init__()
        weight = rng.normal(0.0, init_std, size=(in_features, out_features)).astype(dtype)
        self.params = {"W": weight, "b": np.zeros(out_features, dtype=dtype)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.needs_input_grad = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        fan_in = self.params["W"].shape[0]
        if x.ndim != 2 or x.shape[1] != fan_in:
            raise ValueError(f"Linear expects input of shape (batch, {fan_in}), got {x.shape}")
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        np.matmul(self.x.T, dout, out=self.grads["W"])
        np.sum(dout, axis=0, out=self.grads["b"])
        return dout @ self.params["W"].T if self.needs_input_grad else None
