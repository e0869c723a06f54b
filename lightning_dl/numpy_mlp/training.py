"""Mini-batch training loop and per-epoch statistics (the CMU 11-785 ``get_training_stats``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lightning_dl.numpy_mlp.mlp import MLP

Split = tuple[np.ndarray, np.ndarray]  # (features (N, D) float, labels (N,) int)


@dataclass
class TrainingStats:
    """One entry per epoch (the last epoch may be cut short by ``max_steps``)."""

    train_losses: list[float] = field(default_factory=list)
    train_errors: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    val_errors: list[float] = field(default_factory=list)
    steps: int = 0


def evaluate(mlp: MLP, split: Split, batch_size: int = 1000) -> tuple[float, float]:
    """Mean loss and error rate in eval mode (BatchNorm uses running statistics)."""
    x, y = split
    mlp.eval()
    loss_sum, wrong = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        logits = mlp.forward(xb)
        loss_sum += mlp.criterion.forward(logits, yb) * len(yb)
        wrong += int((logits.argmax(axis=1) != yb).sum())
    mlp.train()
    return loss_sum / len(x), wrong / len(x)


def get_training_stats(
    mlp: MLP,
    train: Split,
    val: Split,
    *,
    batch_size: int,
    epochs: int | None = None,
    max_steps: int | None = None,
    seed: int = 0,
) -> TrainingStats:
    """Train with a fresh shuffle each epoch; stop after ``epochs`` or ``max_steps`` (first hit).

    Training loss/error of an epoch are averaged over its batches as they were trained on;
    validation loss/error are measured after the epoch. Incomplete last batches are dropped so
    every BatchNorm batch has ``batch_size`` samples.
    """
    if epochs is None and max_steps is None:
        raise ValueError("give epochs, max_steps or both")
    x, y = train
    batches_per_epoch = len(x) // batch_size
    if batches_per_epoch == 0:
        raise ValueError(f"batch_size={batch_size} exceeds the {len(x)} training samples")
    rng = np.random.default_rng(seed)
    stats = TrainingStats()
    epoch = 0
    mlp.train()
    while (epochs is None or epoch < epochs) and (max_steps is None or stats.steps < max_steps):
        order = rng.permutation(len(x))
        loss_sum, wrong, seen = 0.0, 0, 0
        for b in range(batches_per_epoch):
            if max_steps is not None and stats.steps >= max_steps:
                break
            idx = order[b * batch_size : (b + 1) * batch_size]
            xb, yb = x[idx], y[idx]
            mlp.zero_grads()
            logits = mlp.forward(xb)
            loss_sum += mlp.backward(yb) * len(yb)
            wrong += int((logits.argmax(axis=1) != yb).sum())
            seen += len(yb)
            mlp.step()
            stats.steps += 1
        stats.train_losses.append(loss_sum / seen)
        stats.train_errors.append(wrong / seen)
        val_loss, val_error = evaluate(mlp, val)
        stats.val_losses.append(val_loss)
        stats.val_errors.append(val_error)
        epoch += 1
    return stats
