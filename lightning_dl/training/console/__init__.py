"""What a person sees while a run trains: one live bar on a terminal, a few plain lines in a log.

On a terminal, :class:`LiveProgressBar` (Lightning's ``RichProgressBar``) draws ONE bar for the
whole run (optimizer steps, loss, accuracy, it/s, ETA); validation, sanity-check and test bars
disappear when they finish, and each validation leaves one printed line. When the output is not
a terminal (CI, ``> log``), :class:`LogProgressBar` never redraws: it prints a line every 10% of
training, at most one per 30 s and at least one per 5 min, plus the same line per validation.

Both bars show the training metrics of the last logging step from the module's
``progress_values`` (host floats; see ``Classifier.training_step``), so they never read a device
tensor, and redraw by time, not per batch. :func:`silence_harmless_notices` drops, by their exact
text, the notices that Lightning, torch and wandb print on every run and that say nothing about it.

Modules: :mod:`.log_bar`, :mod:`.live_bar`, :mod:`.model_summary`, :mod:`.notices`.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelSummary, RichModelSummary
from pytorch_lightning.callbacks.progress import ProgressBar
from pytorch_lightning.loggers import WandbLogger

from lightning_dl.training.console.live_bar import LiveProgressBar
from lightning_dl.training.console.log_bar import LineSchedule, LogProgressBar
from lightning_dl.training.console.model_summary import CompactModelSummary
from lightning_dl.training.console.notices import (
    _LOG_FILTER,
    HARMLESS_LOG_MESSAGES,
    HARMLESS_WARNINGS,
    LIGHTNING_LOGGERS,
    silence_harmless_notices,
)

__all__ = [
    "HARMLESS_LOG_MESSAGES",
    "HARMLESS_WARNINGS",
    "LIGHTNING_LOGGERS",
    "_LOG_FILTER",
    "CompactModelSummary",
    "LineSchedule",
    "LiveProgressBar",
    "LogProgressBar",
    "configure_console",
    "progress_bar_for",
    "silence_harmless_notices",
]


def configure_console(
    trainer: pl.Trainer, configured_callbacks: Any = None, stream: TextIO | None = None
) -> None:
    """Swap Lightning's default progress bar and model summary for ours.

    ``configured_callbacks`` are the callbacks the user configured: a progress bar or model
    summary among them is kept as it is, and so is ``enable_progress_bar=False`` (no bar at all).
    The bar is :class:`LiveProgressBar` when ``stream`` (default stdout) is a terminal, else
    :class:`LogProgressBar`.
    """
    given = configured_callbacks or []
    given = list(given) if isinstance(given, list | tuple) else [given]
    keep_bar = any(isinstance(cb, ProgressBar) for cb in given)
    keep_summary = any(isinstance(cb, ModelSummary) for cb in given)
    for index, callback in enumerate(trainer.callbacks):
        if isinstance(callback, ProgressBar) and not keep_bar:
            trainer.callbacks[index] = progress_bar_for(stream or sys.stdout)
        elif type(callback) in (ModelSummary, RichModelSummary) and not keep_summary:
            trainer.callbacks[index] = CompactModelSummary(getattr(callback, "_max_depth", 1))
    for logger in trainer.loggers:
        init = getattr(logger, "_wandb_init", None) if isinstance(logger, WandbLogger) else None
        if isinstance(init, dict) and init.get("anonymous") is None:
            # WandbLogger passes anonymous=None ("not set"), and recent wandb warns on every run
            # that the setting has no effect; leaving it out is the same run, minus the notice.
            init.pop("anonymous", None)


def progress_bar_for(stream: TextIO) -> ProgressBar:
    """The live bar for a terminal, plain lines for anything else."""
    isatty = getattr(stream, "isatty", None)
    return LiveProgressBar() if callable(isatty) and isatty() else LogProgressBar()
