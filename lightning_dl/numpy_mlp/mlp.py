"""The NumPy MLP: Linear -> [BatchNorm] -> activation per hidden layer, a Linear head, and an
optional output activation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lightning_dl.numpy_mlp.activations import ACTIVATIONS
from lightning_dl.numpy_mlp.batchnorm import BatchNorm
from lightning_dl.numpy_mlp.losses import CrossEntropy, Softmax, SoftmaxCrossEntropy
from lightning_dl.numpy_mlp.modules import Linear, Module
from lightning_dl.numpy_mlp.optim import SGD

OUTPUT_ACTIVATIONS = {**ACTIVATIONS, "softmax": Softmax}


class MLP:
    """Multi-layer perceptron; ``step`` is SGD + momentum (PyTorch's rule: v = mu*v + g).

    ``forward(x)`` returns the head's logits, or ``output_activation`` of them. ``backward(dout)``
    back-propagates a gradient with respect to that output, given from outside; ``backward_loss
    (targets)`` scores the last output with ``criterion`` and back-propagates its gradient. Both
    *set* every parameter's gradient (see modules.py): a step needs no ``zero_grads``.
    ``criterion`` defaults to softmax cross-entropy on logits, or cross-entropy on probabilities
    with ``output_activation="softmax"``. BatchNorm follows the Linear of the first
    ``num_bn_layers`` hidden layers, before the activation. ``input_grad=False`` lets
    ``backward`` skip dL/dx (it returns None): the data needs no gradient.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hiddens: Sequence[int],
        activation: str = "relu",
        *,
        output_activation: str | None = None,
        criterion: object | None = None,
        lr: float = 2e-3,
        momentum: float = 0.0,
        num_bn_layers: int = 0,
        unbiased_running_var: bool = True,
        init_std: float = 1e-4,
        seed: int = 0,
        dtype: np.dtype | type = np.float64,
        input_grad: bool = False,
    ) -> None:
        if activation not in ACTIVATIONS:
            choices = sorted(ACTIVATIONS)
            raise ValueError(f"unknown activation {activation!r}; choose from {choices}")
        if output_activation is not None and output_activation not in OUTPUT_ACTIVATIONS:
            choices = sorted(OUTPUT_ACTIVATIONS)
            raise ValueError(f"unknown output activation {output_activation!r}; choose {choices}")
        if not 0 <= num_bn_layers <= len(hiddens):
            raise ValueError(f"num_bn_layers={num_bn_layers} must be within 0..{len(hiddens)}")
        rng = np.random.default_rng(seed)
        sizes = [input_size, *hiddens]
        self.layers: list[Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            self.layers.append(Linear(fan_in, fan_out, init_std, rng, dtype))
            if i < num_bn_layers:
                bn = BatchNorm(fan_out, dtype=dtype, unbiased_running_var=unbiased_running_var)
                self.layers.append(bn)
            self.layers.append(ACTIVATIONS[activation]())
        self.layers.append(Linear(sizes[-1], output_size, init_std, rng, dtype))
        if output_activation is not None:
            self.layers.append(OUTPUT_ACTIVATIONS[output_activation]())
        self.layers[0].needs_input_grad = input_grad
        if criterion is None:
            criterion = CrossEntropy() if output_activation == "softmax" else SoftmaxCrossEntropy()
        self.criterion = criterion
        self.optimizer = SGD(self, lr=lr, momentum=momentum)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        self.output = x
        return x

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Set every gradient from dL/d(last forward's output); return dL/dx (None if skipped)."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def backward_loss(self, targets: np.ndarray) -> float:
        """Criterion of the last forward's output against ``targets``, back-propagated."""
        loss = self.criterion.forward(self.output, targets)
        self.backward(self.criterion.backward())
        return loss

    def zero_grads(self) -> None:
        for layer in self.layers:
            layer.zero_grads()

    def step(self) -> None:
        self.optimizer.step()

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
        """Copy a :meth:`state_dict` back in place (optimizer state is left as it is)."""
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
