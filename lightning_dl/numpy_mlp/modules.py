"""NumPy layers with hand-written backward passes (no autograd), in the style of CMU 11-785 HW1.

Every module caches in ``forward`` what its ``backward`` needs; ``backward(dout)`` returns the
gradient with respect to the module's input and *adds* parameter gradients into ``grads`` (like
PyTorch's ``.grad``), so ``zero_grads`` must run between steps. Arrays are (batch, features).
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
        self.grads["W"] += self.x.T @ dout
        self.grads["b"] += dout.sum(axis=0)
        return dout @ self.params["W"].T if self.needs_input_grad else None


class BatchNorm(Module):
    """BatchNorm over the batch axis with running statistics exactly as ``nn.BatchNorm1d``.

    Training: normalise with the batch's biased variance; running_var tracks the unbiased one.
    Eval: normalise with the running statistics (a fixed affine map), so one sample works.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        dtype: np.dtype | type = np.float64,
    ) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.params = {"gamma": np.ones(num_features, dtype), "beta": np.zeros(num_features, dtype)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.running_mean = np.zeros(num_features, dtype)
        self.running_var = np.ones(num_features, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.training:
            n = x.shape[0]
            if n < 2:
                raise ValueError(f"BatchNorm training needs a batch of >= 2 samples, got {x.shape}")
            mean, var = x.mean(axis=0), x.var(axis=0)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_var += self.momentum * (var * n / (n - 1) - self.running_var)
        else:
            mean, var = self.running_mean, self.running_var
        self.inv_std = 1.0 / np.sqrt(var + self.eps)
        self.x_hat = (x - mean) * self.inv_std
        return self.x_hat * self.params["gamma"] + self.params["beta"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dbeta = dout.sum(axis=0)
        dgamma = (dout * self.x_hat).sum(axis=0)
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        scale = self.params["gamma"] * self.inv_std
        if not self.training:  # statistics are constants: the layer is affine in x
            return dout * scale
        n = dout.shape[0]
        return scale * (dout - dbeta / n - self.x_hat * (dgamma / n))


class SoftmaxCrossEntropy:
    """Mean cross-entropy of integer labels under softmax(logits), via log-sum-exp.

    Subtracting each row's maximum before exp keeps logits of +-1000 finite.
    ``backward`` returns dL/dlogits = (softmax - onehot) / batch.
    """

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted - log_norm
        self.probs = np.exp(log_probs)
        self.labels = labels
        return float(-log_probs[np.arange(len(labels)), labels].mean())

    def backward(self) -> np.ndarray:
        grad = self.probs.copy()
        grad[np.arange(len(self.labels)), self.labels] -= 1.0
        return grad / len(self.labels)
