"""The NumPy MLP: Linear -> [BatchNorm] -> activation per hidden layer, then a Linear head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lightning_dl.numpy_mlp.activations import ACTIVATIONS
from lightning_dl.numpy_mlp.modules import BatchNorm, Linear, Module, SoftmaxCrossEntropy


class MLP:
    """Multi-layer perceptron trained with SGD + momentum (PyTorch's rule: v = mu*v + g; p -= lr*v).

    ``forward(x)`` returns logits; ``backward(labels)`` scores the last forward's logits with
    softmax cross-entropy, back-propagates, accumulates gradients and returns the mean loss.
    BatchNorm follows the Linear of the first ``num_bn_layers`` hidden layers, before activation.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hiddens: Sequence[int],
        activation: str = "relu",
        *,
        lr: float = 2e-3,
        momentum: float = 0.0,
        num_bn_layers: int = 0,
        init_std: float = 1e-4,
        seed: int = 0,
        dtype: np.dtype | type = np.float64,
    ) -> None:
        if activation not in ACTIVATIONS:
            choices = sorted(ACTIVATIONS)
            raise ValueError(f"unknown activation {activation!r}; choose from {choices}")
        if not 0 <= num_bn_layers <= len(hiddens):
            raise ValueError(f"num_bn_layers={num_bn_layers} must be within 0..{len(hiddens)}")
        rng = np.random.default_rng(seed)
        sizes = [input_size, *hiddens]
        self.layers: list[Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            self.layers.append(Linear(fan_in, fan_out, init_std, rng, dtype))
            if i < num_bn_layers:
                self.layers.append(BatchNorm(fan_out, dtype=dtype))
            self.layers.append(ACTIVATIONS[activation]())
        self.layers.append(Linear(sizes[-1], output_size, init_std, rng, dtype))
        self.layers[0].needs_input_grad = False  # the data needs no gradient
        self.criterion = SoftmaxCrossEntropy()
        self.lr, self.momentum = lr, momentum
        self.velocity = [{k: np.zeros_like(p) for k, p in m.params.items()} for m in self.layers]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        self.logits = x
        return x

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def backward(self, labels: np.ndarray) -> float:
        loss = self.criterion.forward(self.logits, labels)
        grad = self.criterion.backward()
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return loss

    def zero_grads(self) -> None:
        for layer in self.layers:
            layer.zero_grads()

    def step(self) -> None:
        for layer, velocity in zip(self.layers, self.velocity, strict=True):
            for name, param in layer.params.items():
                v = velocity[name]
                v *= self.momentum
                v += layer.grads[name]
                param -= self.lr * v

    def state_dict(self) -> list[dict[str, np.ndarray]]:
        """Copies of every layer's parameters and BatchNorm running statistics."""
        state = []
        for layer in self.layers:
            entry = {name: p.copy() for name, p in layer.params.items()}
            if isinstance(layer, BatchNorm):
                entry["running_mean"] = layer.running_mean.copy()
                entry["running_var"] = layer.running_var.copy()
            state.append(entry)
        return state

    def load_state_dict(self, state: list[dict[str, np.ndarray]]) -> None:
        """Copy a :meth:`state_dict` back in place (optimizer velocity is left as it is)."""
        if len(state) != len(self.layers):
            raise ValueError(f"state has {len(state)} layers, the MLP {len(self.layers)}")
        for layer, entry in zip(self.layers, state, strict=True):
            for name, param in layer.params.items():
                param[...] = entry[name]
            if isinstance(layer, BatchNorm):
                layer.running_mean[...] = entry["running_mean"]
                layer.running_var[...] = entry["running_var"]

    def train(self) -> MLP:
        for layer in self.layers:
            layer.training = True
        return self

    def eval(self) -> MLP:
        for layer in self.layers:
            layer.training = False
        return self
