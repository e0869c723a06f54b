"""What a person sees while a run trains: the progress bars (:mod:`.progress`), a one-line model
summary sized from each parameter's own dtype (Lightning's sizes from the trainer's precision,
and warns), and none of the notices that say nothing about the run.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from typing import Any, TextIO

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelSummary, RichModelSummary
from pytorch_lightning.callbacks.progress import ProgressBar
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.model_summary import get_human_readable_count

from lightning_dl.training.console.progress import LiveProgressBar, LogProgressBar

__all__ = ["LiveProgressBar", "LogProgressBar", "configure_console", "silence_harmless_notices"]


# Warnings that are noise on every run: (exact start of the message, category, emitting module).
HARMLESS_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # pytorch_lightning 2.6 builds torch's deprecated LeafSpec itself (torch >= 2.10 warns)
    ("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, r"pytorch_lightning\."),
    # fit.main(args) called from Python (tests, sweeps) while sys.argv holds the caller's own
    ("LightningCLI's args parameter is intended to run from within Python", UserWarning, ""),
    # a resumed run's own checkpoints (the run directory refuses anyone else's)
    ("Checkpoint directory ", UserWarning, r"pytorch_lightning\.callbacks\.model_checkpoint"),
)
# Lightning log records dropped by their exact text.
HARMLESS_LOG_MESSAGES: frozenset[str] = frozenset(
    {
        "💡 Tip: For seamless cloud logging and experiment tracking, try installing "
        "[litlogger](https://pypi.org/project/litlogger/) to enable LitLogger, which logs metrics "
        "and artifacts automatically to the Lightning Experiments platform.",
        "TPU available: False, using: 0 TPU cores",  # kept when there is a TPU
        "Using bfloat16 Automatic Mixed Precision (AMP)",  # the summary says "precision: ..."
        "Using 16bit Automatic Mixed Precision (AMP)",
    }
)
LIGHTNING_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
)


def _not_harmless(record: logging.LogRecord) -> bool:  # a logging filter
    return record.getMessage() not in HARMLESS_LOG_MESSAGES


def silence_harmless_notices() -> None:
    """Drop the notices above by their exact text; wandb: silent offline (the final table says
    ``wandb sync``), quiet online, unless the user set either. Safe to call more than once."""
    for message, category, module in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", re.escape(message), category, module)
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(_not_harmless)  # no-op when already added
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled"):
        os.environ.setdefault("WANDB_SILENT", "true")
    else:
        os.environ.setdefault("WANDB_QUIET", "true")


class CompactModelSummary(ModelSummary):
    """The model summary in one line: parameters (trainable), size and the layers that hold them."""

    def _summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Precision .* not supported by the model summary")
            summary = super()._summary(trainer, pl_module)
        self._megabytes = sum(p.numel() * p.element_size() for p in pl_module.parameters()) / 1e6
        return summary

    def summarize(  # type: ignore[override]  # Lightning's is a staticmethod; we need self
        self,
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        *_: Any,
        **__: Any,
    ) -> None:
        columns = dict(summary_data)
        layers = [
            f"{name} {kind} {params.strip()}"
            for name, kind, params in zip(
                columns["Name"], columns["Type"], columns["Params"], strict=True
            )
            if params.strip() != "0"
        ]
        frozen = total_parameters - trainable_parameters
        line = (
            f"model: {get_human_readable_count(total_parameters).strip()} parameters"
            + (f" ({get_human_readable_count(frozen).strip()} frozen)" if frozen else "")
            + f", {getattr(self, '_megabytes', model_size):.1f} MB"
            + (f": {', '.join(layers)}" if layers else "")
        )
        logging.getLogger("pytorch_lightning.callbacks.model_summary").info(line)


def configure_console(
    trainer: pl.Trainer, configured_callbacks: Any = None, stream: TextIO | None = None
) -> None:
    """Swap Lightning's default progress bar and model summary for ours; a bar or summary among
    the user's ``configured_callbacks`` is kept, and so is ``enable_progress_bar=False``."""
    given = configured_callbacks
    given = given if isinstance(given, list | tuple) else [given]
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
            # anonymous=None ("not set") makes recent wandb warn on every run; None is the default
            init.pop("anonymous", None)


def progress_bar_for(stream: TextIO) -> ProgressBar:
    """The live bar for a terminal, plain lines for anything else."""
    isatty = getattr(stream, "isatty", None)
    return LiveProgressBar() if callable(isatty) and isatty() else LogProgressBar()
