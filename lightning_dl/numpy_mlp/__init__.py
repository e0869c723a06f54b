"""Pure-NumPy MLP with hand-written backprop (UvA DL practical 1 / CMU 11-785 HW1 part 1)."""

from lightning_dl.numpy_mlp.activations import (
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Tanh,
)
from lightning_dl.numpy_mlp.batchnorm import BatchNorm
from lightning_dl.numpy_mlp.losses import CrossEntropy, MSELoss, Softmax, SoftmaxCrossEntropy
from lightning_dl.numpy_mlp.mlp import MLP
from lightning_dl.numpy_mlp.modules import Linear, Module
from lightning_dl.numpy_mlp.optim import SGD, Adam
from lightning_dl.numpy_mlp.training import TrainingStats, evaluate, get_training_stats

__all__ = [
    "ELU",
    "GELU",
    "Identity",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "BatchNorm",
    "CrossEntropy",
    "MSELoss",
    "Softmax",
    "SoftmaxCrossEntropy",
    "MLP",
    "Linear",
    "Module",
    "SGD",
    "Adam",
    "TrainingStats",
    "evaluate",
    "get_training_stats",
]
