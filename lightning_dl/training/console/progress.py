"""The progress bars: one live bar on a terminal, a few plain lines in a log; both print one line
per validation, and neither reads a device tensor."""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.callbacks.progress import ProgressBar, RichProgressBar

LIGHTNING_LOGGER_ROOTS = ("pytorch_lightning", "lightning_fabric", "lightning")
TRAIN_NAMES = {"train/loss": "loss", "train/acc": "acc"}  # progress_values keys, as shown


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds))) if math.isfinite(seconds) else "?"


def train_metrics(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """The module's progress_values (host floats) and the ``prog_bar=True`` values Lightning has
    read back already: the bars never read a device tensor."""
    metrics: dict[str, Any] = dict(trainer.progress_bar_metrics)
    values = getattr(pl_module, "progress_values", None) or {}
    metrics.update({TRAIN_NAMES.get(key, key): value for key, value in values.items()})
    return metrics


def _steps(step: int, total: float) -> str:
    return f"step {step}/{int(total)}" if math.isfinite(total) else f"step {step}"


@dataclass
class ValidationLine:
    """One line per validation: its ``val/*`` metrics and the best monitored value so far."""

    best: float | None = None

    def __call__(self, trainer: pl.Trainer, total: float) -> str:
        # epoch-level values: one read per validation
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        parts = [f"val   {_steps(trainer.global_step, total)}"]
        parts += [f"{key.removeprefix('val/')} {value:.4f}" for key, value in metrics.items()]
        checkpoint = trainer.checkpoint_callback
        monitor, mode = "val/acc", "max"
        if isinstance(checkpoint, ModelCheckpoint) and checkpoint.monitor:
            monitor, mode = checkpoint.monitor, checkpoint.mode
        if monitor in metrics:
            saved = getattr(checkpoint, "best_model_score", None)  # a resumed run's best
            known = [float(v) for v in (metrics[monitor], self.best, saved) if v is not None]
            self.best = (max if mode == "max" else min)(known)
            parts.append(f"(best {monitor.removeprefix('val/')} {self.best:.4f})")
        return "  ".join(parts)


@dataclass
class LineSchedule:
    """When a log line is due: every ``every_fraction`` of the run (unknown length: every
    ``min_interval_s``), ``min_interval_s`` apart, ``max_interval_s`` at most; and at the end."""

    total: float  # optimizer steps of the run; inf when unknown
    every_fraction: float = 0.1
    min_interval_s: float = 30.0
    max_interval_s: float = 300.0
    last_step: int = 0
    last_time: float = field(default_factory=time.monotonic)

    def due(self, step: int, now: float) -> bool:
        if step >= self.total:
            return step > self.last_step
        elapsed = now - self.last_time
        if elapsed >= self.max_interval_s:
            return True
        if elapsed < self.min_interval_s:
            return False
        if not math.isfinite(self.total):
            return True  # unknown length: every min_interval_s
        return step - self.last_step >= self.every_fraction * self.total

    def mark(self, step: int, now: float) -> None:
        self.last_step, self.last_time = step, now


class LogProgressBar(ProgressBar):
    """Plain lines for logs: no carriage returns, nothing per batch."""

    def __init__(self, every_fraction: float = 0.1, min_interval_s: float = 30.0) -> None:
        super().__init__()
        self._enabled = True
        self._schedule = LineSchedule(math.inf, every_fraction, min_interval_s)
        self._validation_line = ValidationLine()
        self._started = time.monotonic()
        self._start_step = 0
        self._validating_since: float | None = None
        self._validation_s = 0.0  # spent validating since the last line (left out of it/s)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def print(self, *args: Any, **kwargs: Any) -> None:
        print(*args, **kwargs, flush=True)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.monotonic()
        self._started, self._start_step = now, trainer.global_step
        self._validation_s = 0.0  # the sanity check is not training time either
        self._schedule.total = float(trainer.estimated_stepping_batches)
        self._schedule.mark(trainer.global_step, now)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        now = time.monotonic()
        if self._enabled and self._schedule.due(trainer.global_step, now):
            self._print_train_line(trainer, pl_module, now)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled and trainer.global_step > self._schedule.last_step:  # stopped early
            self._print_train_line(trainer, pl_module, time.monotonic())

    def _print_train_line(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, now: float
    ) -> None:
        schedule, step = self._schedule, trainer.global_step
        busy = now - schedule.last_time - self._validation_s
        speed = (step - schedule.last_step) / busy if busy > 0 else math.nan
        overall = (step - self._start_step) / max(now - self._started, 1e-9)
        remaining = (schedule.total - step) / overall if overall > 0 else math.inf
        parts = [f"train {_steps(step, schedule.total)}"]
        parts += [
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in train_metrics(trainer, pl_module).items()
        ]
        parts.append(f"{speed:.1f} it/s")
        if step < schedule.total and math.isfinite(schedule.total):
            parts.append(f"ETA {_duration(remaining)}")
        elif step >= schedule.total:
            parts.append(f"done in {_duration(now - self._started)}")
        self.print("  ".join(parts))
        schedule.mark(step, now)
        self._validation_s = 0.0

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validating_since = time.monotonic()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._validating_since is not None:
            self._validation_s += time.monotonic() - self._validating_since
            self._validating_since = None
        if self._enabled and not trainer.sanity_checking:
            self.print(self._validation_line(trainer, self._schedule.total))


class LiveProgressBar(RichProgressBar):
    """Rich bar drawn on the training thread only, ``refresh_per_second`` at most: Lightning's
    background redraws race with the lines printed above the bar and can erase one."""

    def __init__(
        self, refresh_per_second: int = 4, console_kwargs: dict[str, Any] | None = None
    ) -> None:
        super().__init__(refresh_per_second, leave=False, console_kwargs=console_kwargs)
        self._interval = 1.0 / refresh_per_second
        self._next_train_draw = self._next_eval_draw = 0.0
        self._total = math.inf
        self._validation_line = ValidationLine()
        self._rerouted: list[tuple[logging.StreamHandler, Any]] = []

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return train_metrics(trainer, pl_module)

    def _init_progress(self, trainer: pl.Trainer) -> None:
        """No background redraws (``refresh`` draws on this thread), and log records printed
        while the bar is live go above it, as print() does: rich redirects sys.stdout/stderr, but
        a logging handler keeps its own stream and would cut the bar."""
        super()._init_progress(trainer)
        live = self.progress.live if self.progress is not None else None
        if (thread := getattr(live, "_refresh_thread", None)) is not None:
            live.auto_refresh = False
            thread.stop()
            thread.join()
            live._refresh_thread = None
        loggers = [logging.getLogger(name) for name in ("", *LIGHTNING_LOGGER_ROOTS)]
        for proxy in (sys.stdout, sys.stderr):
            original = getattr(proxy, "rich_proxied_file", None)  # rich's FileProxy, while live
            for logger in loggers if original is not None else ():
                for handler in logger.handlers:
                    if isinstance(handler, logging.StreamHandler) and handler.stream is original:
                        handler.setStream(proxy)
                        self._rerouted.append((handler, original))

    def refresh(self, hard: bool = False) -> None:
        if self.progress is not None:
            self.progress.refresh()  # drawn now, on this thread; callers already throttle

    def _stop_progress(self) -> None:
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._rerouted.clear()
        super()._stop_progress()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._total = float(trainer.estimated_stepping_batches)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.is_enabled and self.progress is not None and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
            self.refresh()

    def _initialize_train_progress_bar_id(self) -> None:  # also used on a mid-epoch resume
        total = int(self._total) if math.isfinite(self._total) else self._total
        # padded like Lightning's: the bar keeps its width while a validation bar shows below
        self.train_progress_bar_id = self._add_task(total, f"{'train':<{len('Validation')}}")
        assert self.progress is not None
        self.progress.update(self.train_progress_bar_id, completed=self.trainer.global_step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        now = time.monotonic()
        if self.is_disabled or now < self._next_train_draw:
            return
        self._next_train_draw = now + self._interval
        self._draw_train(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.is_enabled:
            self._draw_train(trainer, pl_module)  # the bar left on screen shows the last step

    def _draw_train(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.progress is None:
            return
        if self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self.progress.update(self.train_progress_bar_id, completed=trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()

    def _update(
        self, progress_bar_id: Any, current: int, visible: bool = True, hard: bool = False
    ) -> None:
        """Evaluation bars (validation, test, predict), at most a few redraws per second."""
        now = time.monotonic()
        if now >= self._next_eval_draw:
            self._next_eval_draw = now + self._interval
            super()._update(progress_bar_id, current, visible, hard)

    def _remove(self, attribute: str) -> None:
        task = getattr(self, attribute)
        if self.progress is not None and task is not None:
            self.progress.remove_task(task)
            self.refresh()
        setattr(self, attribute, None)

    def on_sanity_check_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove("val_sanity_progress_bar_id")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove("val_progress_bar_id")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self.is_enabled and not trainer.sanity_checking and self._console is not None:
            line = self._validation_line(trainer, self._total)
            self._console.print(line, markup=False, highlight=False)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove("test_progress_bar_id")
        super().on_test_end(trainer, pl_module)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove("predict_progress_bar_id")
        super().on_predict_end(trainer, pl_module)
