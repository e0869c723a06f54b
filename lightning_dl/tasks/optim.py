"""From the config's optimizer and schedule factories to what ``configure_optimizers`` returns,
with what the classes alone cannot know: a backbone's per-group ``lr_scale``, the fused kernel
when ``fused`` is unset, the run's length for an unset ``total_steps`` / ``T_max``,
``ReduceLROnPlateau`` stepped once per validation, and after a resume the resuming command's
settings, said in one line.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_info
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from data_modules.errors import ReportedError, UserInputError

OptimizerFactory = Callable[[Iterable], Optimizer]
SchedulerFactory = Callable[[Optimizer], Any]
RUN_LENGTH_KEYS = ("total_steps", "T_max")  # schedule arguments that mean "steps in the run"
PLATEAU_MONITOR = "val/loss"
OPTIMIZER_SETTINGS = "lightning_dl_optimizer_settings"  # checkpoint key: the configured optimizer


def call_factory(key: str, factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``factory(*args, **kwargs)``; a ``ValueError`` (a backbone's ``hidden: 0``, an optimizer's
    ``lr: -1``: torch's or the class's own check) is one line naming ``--model.<key>`` and the
    class, not a traceback (or jsonargparse's report on Union subtypes)."""
    try:
        return factory(*args, **kwargs)
    except ReportedError:
        raise
    except ValueError as error:
        classes = [a for a in getattr(factory, "args", ()) if isinstance(a, type)]  # a partial
        name = classes[0].__name__ if classes else getattr(factory, "__name__", key)
        raise UserInputError(f"--model.{key}: {name}: {error}") from error


class CosineAnnealingLR(torch.optim.lr_scheduler.CosineAnnealingLR):
    """torch's cosine schedule whose length (``T_max``) defaults to the run's optimizer steps."""

    def __init__(
        self, optimizer: Optimizer, T_max: int | None = None, eta_min: float = 0.0, **kw: Any
    ) -> None:
        if T_max is None:
            raise ValueError("T_max is unset: the Classifier fills it from the trainer")
        super().__init__(optimizer, T_max=T_max, eta_min=eta_min, **kw)


def _init_arguments(cls: type, defaults: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``defaults`` that ``cls(...)`` takes (AdamW keeps one it does not take)."""
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(defaults)
    return {k: v for k, v in defaults.items() if k in parameters and k != "fused"}


def build_optimizer(factory: OptimizerFactory, groups: list[dict], fused: bool) -> Optimizer:
    """The configured optimizer over ``groups``, each group's lr times its ``lr_scale``."""
    groups = [{**group, "params": list(group["params"])} for group in groups]
    # torch fills its defaults into the dicts
    optimizer = call_factory("optimizer", factory, [dict(g) for g in groups])
    if fused and optimizer.defaults.get("fused", False) is None:  # has a fused kernel, unset
        options = {**_init_arguments(type(optimizer), optimizer.defaults), "foreach": None}
        # no fused kernel for this device or dtype: keep the plain one
        with contextlib.suppress(RuntimeError, ValueError, TypeError):
            optimizer = type(optimizer)([dict(g) for g in groups], **options, fused=True)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
    return optimizer


def _keywords(factory: Any) -> dict[str, Any]:
    """The arguments a factory will pass (a functools.partial, as LightningCLI builds them)."""
    return dict(getattr(factory, "keywords", None) or {})


def build_scheduler(
    factory: SchedulerFactory, optimizer: Optimizer, total_steps: int
) -> dict[str, Any]:
    """Lightning's scheduler config for ``factory`` applied to ``optimizer``."""
    given = _keywords(factory)
    extra: dict[str, Any] = {}
    for key in RUN_LENGTH_KEYS:
        if key in given and given[key] is None and given.get("epochs") is None:
            extra[key] = total_steps
    if "max_lr" in given:  # a scalar peak keeps each group's lr_scale
        peak = given["max_lr"]
        scales = [g.get("lr_scale", 1.0) for g in optimizer.param_groups]
        if not isinstance(peak, list | tuple) and any(s != 1.0 for s in scales):
            extra["max_lr"] = [peak * s for s in scales]
    steps = extra.get("total_steps", given.get("total_steps"))
    if "pct_start" in given and steps and given["pct_start"] * steps == 1:
        extra["pct_start"] = 1.001 / steps  # OneCycleLR divides by zero on a 1-step warm-up
    scheduler = call_factory("lr_scheduler", factory, optimizer, **extra)
    if isinstance(scheduler, ReduceLROnPlateau):
        # strict=False: no val/loss exists before the first validation
        return {
            "scheduler": scheduler,
            "monitor": PLATEAU_MONITOR,
            "interval": "step",
            "strict": False,
        }
    if not isinstance(scheduler, LRScheduler):
        raise TypeError(f"lr_scheduler built {type(scheduler).__name__}, not an LR scheduler")
    return {"scheduler": scheduler, "interval": "step"}


def settings(optimizer: Optimizer) -> dict[str, Any]:
    """The optimizer's class and hyper-parameters per group, as configured (no tensors)."""
    return {
        "class": f"{type(optimizer).__module__}.{type(optimizer).__qualname__}",
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
    }


SCHEDULED_LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")  # rescaled together with the lr


def apply_new_settings(
    optimizer: Optimizer, schedulers: list[Any], saved: dict[str, Any], configured: dict[str, Any]
) -> list[str]:
    """After a resume, the resuming command's settings win over the checkpoint's; a new lr
    rescales the schedule's current, base and peak values by new / old, keeping its shape. The
    state (moments, step counts) stays. Returns the changes."""
    changes: list[str] = []
    for i, (group, old, new) in enumerate(
        zip(optimizer.param_groups, saved["groups"], configured["groups"], strict=False)
    ):
        where = f" (group {group['name']})" if "name" in group else f" (group {i})"
        for key, value in new.items():
            if key in ("initial_lr", "max_lr", "min_lr") or old.get(key) == value:
                continue
            if key == "lr" and old.get("lr"):
                ratio = value / old["lr"]
                for k in SCHEDULED_LR_KEYS:
                    if isinstance(group.get(k), float | int):
                        group[k] = group[k] * ratio
                for scheduler in schedulers:
                    base = getattr(scheduler, "base_lrs", None)
                    if base is not None and i < len(base):
                        base[i] = base[i] * ratio
            else:
                group[key] = value
            changes.append(f"{key} {old.get(key)!r} -> {value!r}{where}")
    return changes


def with_schedule(
    opt: Optimizer, scheduler_factory: SchedulerFactory | None, total_steps: Callable[[], float]
) -> Any:
    """What ``configure_optimizers`` returns: ``opt`` alone, or with the schedule built for the
    run's length. ``total_steps`` (``estimated_stepping_batches``) is asked only when there is
    a schedule: with a finite ``max_epochs`` it builds the train loader."""
    if scheduler_factory is None:
        return opt
    total = int(total_steps())
    return {"optimizer": opt, "lr_scheduler": build_scheduler(scheduler_factory, opt, total)}


class ConfiguredOptimizer:
    """LightningModule hooks for ``optimizer_factory`` / ``scheduler_factory``; the checkpoint
    keeps the optimizer as configured, so a resume can tell what its command changed. A module
    that overrides one of these hooks calls ``super()``."""

    _configured: dict[str, Any] | None = None  # the optimizer as this run built it
    _resumed_from: dict[str, Any] | None = None  # ... and as the checkpoint's run did
    _validations = _plateau_steps = 0  # validations seen, and plateau steps taken

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        """A copy (an EMA's ``AveragedModel``) shares the factories: one the CLI built holds the
        CLI, so copying it would copy the training data and the loggers (and open a wandb run)."""
        for factory in (self.optimizer_factory, self.scheduler_factory):
            memo[id(factory)] = factory
        copied = self.__class__.__new__(self.__class__)
        memo[id(self)] = copied
        copied.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return copied

    def _param_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters, in the backbone's groups (with their ``lr_scale``) if any."""
        groups = getattr(self.backbone, "parameter_groups", None)
        if callable(groups):
            return groups()
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self) -> Any:
        opt = build_optimizer(
            self.optimizer_factory, self._param_groups(), fused=self.hparams.fused_optimizer
        )
        self._configured = settings(opt)
        if self._resumed_from and self._resumed_from["class"] != self._configured["class"]:
            raise UserInputError(
                f"the checkpoint was trained with {self._resumed_from['class']}, this command "
                f"configures {self._configured['class']}: its optimizer state cannot carry over; "
                "resume with the same optimizer class, or start a new run"
            )
        return with_schedule(
            opt, self.scheduler_factory, lambda: self.trainer.estimated_stepping_batches
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._configured is not None:
            checkpoint[OPTIMIZER_SETTINGS] = self._configured

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resumed_from = checkpoint.get(OPTIMIZER_SETTINGS)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._validations += 1

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Plateau schedules step once per validation; Lightning offers the metric every step."""
        if metric is None:
            scheduler.step()
        elif self._validations > self._plateau_steps:
            self._plateau_steps = self._validations
            scheduler.step(metric)

    def on_train_start(self) -> None:
        """A resumed run trains with this command's optimizer settings, not the checkpoint's."""
        if not (self._resumed_from and self._configured):
            return
        schedulers = [config.scheduler for config in self.trainer.lr_scheduler_configs]
        changes = apply_new_settings(
            self.trainer.optimizers[0], schedulers, self._resumed_from, self._configured
        )
        if changes:
            rank_zero_info(
                "resumed with this command's optimizer settings instead of the checkpoint's "
                f"(optimizer state kept): {'; '.join(changes)}"
            )
