"""Pruners, built the same way by the sweep and by the pruning callback inside each trial's run.

The pruner is not kept in Optuna's storage, so the trial's own process (which decides whether
to stop) rebuilds it from the same few settings the sweep was given.
"""

from __future__ import annotations

from typing import Literal

from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner

PrunerName = Literal["median", "hyperband", "none"]
PRUNERS = ("median", "hyperband", "none")
PRUNED_AT_STEP = "pruned_at_step"  # trial user attribute: the step its run was stopped at


def make_pruner(name: str, startup_trials: int = 5, warmup_steps: int = 0) -> BasePruner:
    """``median``: stop a trial whose value is worse than the median of earlier trials at the
    same step, once ``startup_trials`` trials have finished and after ``warmup_steps`` steps.
    ``hyperband``: successive halving in brackets, the smallest budget ``warmup_steps`` (or
    Optuna's automatic choice when 0). ``none``: never stop a trial early."""
    if name == "median":
        return MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if name == "hyperband":
        return HyperbandPruner(min_resource=warmup_steps or "auto")
    if name == "none":
        return NopPruner()
    raise ValueError(f"unknown pruner '{name}'; expected one of {list(PRUNERS)}")


def monitor_for(metric: str) -> str:
    """The metric logged during training that stands for the sweep's ``metric``:
    ``best_val/acc`` and ``test/acc`` are watched as ``val/acc`` as it is logged."""
    name = metric.removeprefix("best_")
    stage, _, rest = name.partition("/")
    return f"val/{rest}" if rest and stage in ("val", "test") else name
