"""The notices that Lightning, torch and wandb print on every run and that say nothing about it,
dropped by their exact text."""

from __future__ import annotations

import logging
import os
import re
import warnings

# Warnings that are noise on every run: (exact start of the message, category, emitting module).
HARMLESS_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # pytorch_lightning 2.6 builds torch's deprecated LeafSpec itself (torch >= 2.10 warns).
    (
        "`isinstance(treespec, LeafSpec)` is deprecated",
        FutureWarning,
        r"pytorch_lightning\.utilities\._pytree",
    ),
    # fit.main(args) called from Python (tests, sweeps) while sys.argv holds the caller's own.
    (
        "LightningCLI's args parameter is intended to run from within Python",
        UserWarning,
        r"",
    ),
)
# Lightning log records dropped by their exact text.
HARMLESS_LOG_MESSAGES: frozenset[str] = frozenset(
    {
        "💡 Tip: For seamless cloud logging and experiment tracking, try installing "
        "[litlogger](https://pypi.org/project/litlogger/) to enable LitLogger, which logs metrics "
        "and artifacts automatically to the Lightning Experiments platform.",
        "TPU available: False, using: 0 TPU cores",  # kept when there is a TPU
    }
)
LIGHTNING_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
)
LIGHTNING_LOGGER_ROOTS = ("pytorch_lightning", "lightning_fabric", "lightning")


class _DropHarmless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in HARMLESS_LOG_MESSAGES


_LOG_FILTER = _DropHarmless()


def silence_harmless_notices() -> None:
    """Drop the notices listed above (each by its exact text) and keep wandb's output short.

    wandb prints nothing of its own when offline (the end-of-run table prints the ``wandb sync``
    command) and only its essentials (run URL) when online; ``WANDB_SILENT`` / ``WANDB_QUIET``
    set by the user win. Safe to call more than once.
    """
    for message, category, module in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", re.escape(message), category, module)
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(_LOG_FILTER)  # no-op when already added
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled"):
        os.environ.setdefault("WANDB_SILENT", "true")
    else:
        os.environ.setdefault("WANDB_QUIET", "true")
