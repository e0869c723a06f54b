"""Softmax and the losses: fused softmax cross-entropy on logits (the one to train with),
cross-entropy on probabilities (UvA's ``CrossEntropyModule``) and mean squared error.

Each loss's ``forward(scores, targets)`` returns the batch mean as a float and caches what
``backward`` needs; ``backward()`` returns dL/dscores of that forward (the CMU convention), and
``backward(scores, targets)`` runs the forward first (the UvA one). Classification targets are
integer labels (N,) in 0..C-1 or target rows (N, C): one-hot, or any distribution.
"""

from __future__ import annotations

import numpy as np

from lightning_dl.numpy_mlp.modules import Module


def check_targets(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``targets`` as given, once they are labels (N,) in 0..C-1 or rows shaped like ``scores``."""
    targets = np.asarray(targets)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (batch, classes), got shape {scores.shape}")
    if targets.shape == scores.shape:
        return targets
    n, classes = scores.shape
    if targets.shape != (n,) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(
            f"targets must be integer labels of shape ({n},) or rows of shape {scores.shape}, "
            f"got {targets.dtype} {targets.shape}"
        )
    if n and (targets.min() < 0 or targets.max() >= classes):
        raise ValueError(
            f"labels must be in 0..{classes - 1}, got {targets.min()}..{targets.max()}"
        )
    return targets


def _pick(rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return rows[np.arange(len(labels)), labels]


class Softmax(Module):
    """Row-wise softmax; stable for any finite logits (each row's maximum is subtracted first).

    ``backward`` applies each row's Jacobian diag(y) - y y^T as y * (dout - <dout, y>),
    never building the (batch, C, C) tensor.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.out = e / e.sum(axis=1, keepdims=True)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        y = self.out
        return y * (dout - (dout * y).sum(axis=1, keepdims=True))


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits), via log-sum-exp: finite for logits of +-1000.

    ``backward`` returns dL/dlogits = (softmax * sum(t) - t) / batch, (softmax - onehot) / batch
    for labels.
    """

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        self.targets = check_targets(logits, targets)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.probs = np.exp(log_probs)
        if self.targets.ndim == 1:
            return float(-_pick(log_probs, self.targets).mean())
        return float(-(self.targets * log_probs).sum() / len(logits))

    def backward(
        self, logits: np.ndarray | None = None, targets: np.ndarray | None = None
    ) -> np.ndarray:
        if logits is not None:
            self.forward(logits, targets)
        t, n = self.targets, len(self.probs)
        if t.ndim == 1:
            grad = self.probs.copy()
            grad[np.arange(n), t] -= 1.0
            return grad / n
        return (self.probs * t.sum(axis=1, keepdims=True) - t) / n


class CrossEntropy:
    """Mean -sum(t * log p) of probabilities p (a Softmax's output); dL/dp = -t / (p * batch).

    p is clipped from below at the dtype's smallest normal number, so p = 0 gives a large
    finite loss rather than inf. On logits, SoftmaxCrossEntropy is exact and cheaper.
    """

    def forward(self, probs: np.ndarray, targets: np.ndarray) -> float:
        self.targets = check_targets(probs, targets)
        self.probs = np.maximum(probs, np.finfo(probs.dtype).tiny)
        if self.targets.ndim == 1:
            return float(-np.log(_pick(self.probs, self.targets)).mean())
        return float(-(self.targets * np.log(self.probs)).sum() / len(probs))

    def backward(
        self, probs: np.ndarray | None = None, targets: np.ndarray | None = None
    ) -> np.ndarray:
        if probs is not None:
            self.forward(probs, targets)
        t, p, n = self.targets, self.probs, len(self.probs)
        if t.ndim == 1:
            grad = np.zeros_like(p)
            grad[np.arange(n), t] = -1.0 / (_pick(p, t) * n)
            return grad
        return -t / (p * n)


class MSELoss:
    """Mean over every element of (prediction - target)^2, as ``nn.MSELoss()``."""

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        if np.shape(target) != pred.shape:
            raise ValueError(f"target must have the prediction's shape {pred.shape}")
        self.diff = pred - target
        return float((self.diff * self.diff).mean())

    def backward(
        self, pred: np.ndarray | None = None, target: np.ndarray | None = None
    ) -> np.ndarray:
        if pred is not None:
            self.forward(pred, target)
        return self.diff * (2.0 / self.diff.size)
