"""BatchNorm over the batch axis with a hand-written backward (see modules.py for the contract)."""

from __future__ import annotations

import numpy as np

from lightning_dl.numpy_mlp.modules import Module


class BatchNorm(Module):
    """BatchNorm with running statistics as ``nn.BatchNorm1d`` keeps them (by default).

    Training: normalise with the batch mean and biased variance, and move the running statistics
    by ``momentum`` towards them: running_var tracks the *unbiased* batch variance (n / (n - 1)
    times the biased one), as PyTorch does, unless ``unbiased_running_var=False``, which tracks
    the biased one as the CMU 11-785 handout defines it (its alpha = 1 - momentum).
    Eval: normalise with the running statistics (a fixed affine map), so one sample works.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        dtype: np.dtype | type = np.float64,
        *,
        unbiased_running_var: bool = True,
    ) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.unbiased_running_var = unbiased_running_var
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
            tracked = var * (n / (n - 1)) if self.unbiased_running_var else var
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_var += self.momentum * (tracked - self.running_var)
        else:
            mean, var = self.running_mean, self.running_var
        self.inv_std = 1.0 / np.sqrt(var + self.eps)
        self.x_hat = (x - mean) * self.inv_std
        return self.x_hat * self.params["gamma"] + self.params["beta"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dbeta = np.sum(dout, axis=0, out=self.grads["beta"])
        dgamma = np.sum(dout * self.x_hat, axis=0, out=self.grads["gamma"])
        scale = self.params["gamma"] * self.inv_std
        if not self.training:  # statistics are constants: the layer is affine in x
            return dout * scale
        n = dout.shape[0]
        return scale * (dout - dbeta / n - self.x_hat * (dgamma / n))
