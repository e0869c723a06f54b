"""Pure-NumPy MLP with hand-written backprop (UvA DL practical 1 / CMU 11-785 HW1 part 1)."""

from lightning_dl.numpy_mlp.activations import ELU, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from lightning_dl.numpy_mlp.mlp import MLP
from lightning_dl.numpy_mlp.modules import BatchNorm, Linear, Module, SoftmaxCrossEntropy
from lightning_dl.numpy_mlp.training import TrainingStats, evaluate, get_training_stats

__all__ = [
    "ELU",
    "Identity",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "MLP",
    "BatchNorm",
    "Linear",
    "Module",
    "SoftmaxCrossEntropy",
    "TrainingStats",
    "evaluate",
    "get_training_stats",
]
