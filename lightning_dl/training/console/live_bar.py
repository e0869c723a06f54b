"""Progress as one live bar, for a terminal."""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks.progress import RichProgressBar

from lightning_dl.training.console.log_bar import (
    ValidationLine,
    train_metrics,
)
from lightning_dl.training.console.notices import LIGHTNING_LOGGER_ROOTS


class LiveProgressBar(RichProgressBar):
    """Rich bar for terminals: one training bar for the whole run, redrawn a few times a second;
    evaluation bars are removed when they finish; one printed line per validation.

    Every draw happens on the training thread, at most ``refresh_per_second`` times a second.
    Lightning's bar draws from a background thread instead, which races with lines printed above
    the bar: a redraw that computed the bar's height before a line was printed moves the cursor
    up over that line and erases it (seen as a lost ``val step`` line on a loaded machine).
    """

    def __init__(
        self, refresh_per_second: int = 4, console_kwargs: dict[str, Any] | None = None
    ) -> None:
        super().__init__(
            refresh_rate=refresh_per_second, leave=False, console_kwargs=console_kwargs
        )
        self._interval = 1.0 / refresh_per_second
        self._next_train_draw = self._next_eval_draw = 0.0
        self._total = math.inf
        self._validation_line = ValidationLine()
        self._rerouted: list[tuple[logging.StreamHandler, Any]] = []

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return train_metrics(trainer, pl_module)

    def _init_progress(self, trainer: pl.Trainer) -> None:
        super()._init_progress(trainer)
        self._stop_refresh_thread()
        self._route_log_handlers()

    def _stop_refresh_thread(self) -> None:
        """No background redraws (class docstring): ``refresh`` draws on this thread instead."""
        live = self.progress.live if self.progress is not None else None
        thread = getattr(live, "_refresh_thread", None)
        if live is None or thread is None:
            return
        live.auto_refresh = False
        thread.stop()
        thread.join()
        live._refresh_thread = None

    def refresh(self, hard: bool = False) -> None:
        if self.progress is not None:
            self.progress.refresh()  # drawn now, on this thread; callers already throttle

    def _stop_progress(self) -> None:
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._rerouted.clear()
        super()._stop_progress()

    def _route_log_handlers(self) -> None:
        """Log records (Lightning's "`Trainer.fit` stopped", ...) printed while the bar is live go
        above it, as print() does: rich redirects sys.stdout/stderr, but a logging handler keeps
        the stream it was created with and would write into the middle of the bar."""
        loggers = [logging.getLogger(name) for name in ("", *LIGHTNING_LOGGER_ROOTS)]
        for proxy in (sys.stdout, sys.stderr):
            original = getattr(proxy, "rich_proxied_file", None)  # rich's FileProxy, while live
            if original is None:
                continue
            for logger in loggers:
                for handler in logger.handlers:
                    if isinstance(handler, logging.StreamHandler) and handler.stream is original:
                        handler.setStream(proxy)
                        self._rerouted.append((handler, original))

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
