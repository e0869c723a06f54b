"""Mini-batch training loop and per-epoch statistics (the CMU 11-785 ``get_training_stats``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lightning_dl.numpy_mlp.mlp import MLP
from lightning_dl.numpy_mlp.optim import Optimizer

Split = tuple[np.ndarray, np.ndarray]  # (features (N, D) float, labels (N,) int)


@dataclass
class TrainingStats:
    """One entry per epoch (the last epoch may be cut short by ``max_steps``).

    With ``eval_every``, ``eval_steps``/``eval_val_errors`` hold the validation error measured
    every that many steps, and ``best_step`` the step whose model had the lowest one.
    """

    train_losses: list[float] = field(default_factory=list)
    train_errors: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    val_errors: list[float] = field(default_factory=list)
    steps: int = 0
    eval_steps: list[int] = field(default_factory=list)
    eval_val_errors: list[float] = field(default_factory=list)
    best_step: int | None = None
    best_state: list[dict[str, np.ndarray]] | None = field(default=None, repr=False)


def evaluate(mlp: MLP, split: Split, batch_size: int = 1000) -> tuple[float, float]:
    """Mean loss and error rate in eval mode (BatchNorm uses running statistics)."""
    x, y = split
    mlp.eval()
    loss_sum, wrong = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        scores = mlp.forward(xb)
        loss_sum += mlp.criterion.forward(scores, yb) * len(yb)
        wrong += int((scores.argmax(axis=1) != yb).sum())
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
    eval_every: int | None = None,
    track_best: bool = False,
    optimizer: Optimizer | None = None,
) -> TrainingStats:
    """Train with a fresh shuffle each epoch; stop after ``epochs`` or ``max_steps`` (first hit).

    Training loss/error of an epoch are averaged over its batches as they were trained on;
    validation loss/error are measured after the epoch. Incomplete last batches are dropped so
    every BatchNorm batch has ``batch_size`` samples.

    ``eval_every`` also measures the validation error every that many steps (and after the last
    step). ``track_best`` keeps a copy of the weights with the lowest of those (earliest on ties)
    in ``stats.best_state`` for ``mlp.load_state_dict``: model selection on held-out data, the
    "save best" of any training script. At a large effective step size the accuracy swings by
    several points from one evaluation to the next, so the last step's alone is mostly luck.

    ``optimizer`` (an ``optim.SGD`` or ``optim.Adam`` over ``mlp``) replaces ``mlp.step``.
    """
    if epochs is None and max_steps is None:
        raise ValueError("give epochs, max_steps or both")
    if track_best and not eval_every:
        raise ValueError("track_best needs eval_every (how often to measure validation error)")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    x, y = train
    batches_per_epoch = len(x) // batch_size
    if batches_per_epoch == 0:
        raise ValueError(f"batch_size={batch_size} exceeds the {len(x)} training samples")
    rng = np.random.default_rng(seed)
    step = mlp.step if optimizer is None else optimizer.step
    stats = TrainingStats()

    def measure() -> None:
        error = evaluate(mlp, val)[1]
        stats.eval_steps.append(stats.steps)
        stats.eval_val_errors.append(error)
        if stats.best_step is None or error < min(stats.eval_val_errors[:-1]):
            stats.best_step = stats.steps
            stats.best_state = mlp.state_dict() if track_best else None

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
            scores = mlp.forward(xb)  # backward sets the gradients: no zero_grads needed
            loss_sum += mlp.backward_loss(yb) * len(yb)
            wrong += int((scores.argmax(axis=1) != yb).sum())
            seen += len(yb)
            step()
            stats.steps += 1
            if eval_every and stats.steps % eval_every == 0:
                measure()
        stats.train_losses.append(loss_sum / seen)
        stats.train_errors.append(wrong / seen)
        val_loss, val_error = evaluate(mlp, val)
        stats.val_losses.append(val_loss)
        stats.val_errors.append(val_error)
        epoch += 1
    if eval_every and stats.steps % eval_every != 0:
        measure()
    return stats
