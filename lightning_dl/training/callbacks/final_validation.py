"""Validate once at the end of a run that would otherwise end without any validation.

A run shorter than its first validation (``--trainer.max_steps 20`` with validation once an
epoch of 264 steps) would leave no ``best.ckpt``: the test would then see whatever weights the run
ended with, and ``kaggle/predict.py --ckpt .../best.ckpt`` would find no file. On the last
training step of such a run this callback asks Lightning to stop (``trainer.should_stop``),
which makes the fit loop validate there, so ModelCheckpoint writes best.ckpt as usual.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


def _is_last_step(trainer: pl.Trainer, batch_idx: int) -> bool:
    if trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step:
        return True
    epochs = trainer.max_epochs  # None or -1: no limit by epochs
    last_epoch = epochs is not None and epochs > 0 and trainer.current_epoch + 1 >= epochs
    return last_epoch and batch_idx + 1 >= trainer.num_training_batches


class ValidateAtEnd(Callback):
    """Make the last training step validate when no best checkpoint exists yet."""

    def __init__(self) -> None:
        self._active = False  # decided once a fit starts; a validation ends it

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        no_best = checkpoint is None or not getattr(checkpoint, "best_model_path", "")
        self._active = no_best and trainer.enable_validation

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._active = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        if self._active and _is_last_step(trainer, args[-1]):
            trainer.should_stop = True  # the fit loop validates before it stops
