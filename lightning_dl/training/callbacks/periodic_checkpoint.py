"""Write last.ckpt every K optimizer steps, independent of validation.

A step whose validation is due gets its checkpoint after that validation, not before: Lightning
resumes a checkpoint written at the end of a training batch *past* the validation due at that
step (it fast-forwards the validation loop), so a run killed during that validation and resumed
from such a checkpoint never ran it, and when it was the best one, the resumed run tested
another ``best.ckpt`` than an uninterrupted run (same final weights, other test accuracy). This
callback runs after ModelCheckpoint (the CLI appends it last), so the checkpoint it writes after
a validation holds that validation's best-model state too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from data_modules.errors import require_at_least


def validation_due(trainer: pl.Trainer) -> bool:
    """Whether the fit loop validates right after the training batch that just ended."""
    loop = trainer.fit_loop
    try:  # Lightning's own test, asked with the fetcher it will be asked with
        return bool(loop.epoch_loop._should_check_val_fx(loop._data_fetcher))
    except Exception:  # a Lightning without these internals: write at once, as before
        return False


class PeriodicCheckpoint(Callback):
    """Overwrite ``<dirpath>/last.ckpt`` (atomically, via the CLI's checkpoint IO) every K steps."""

    def __init__(self, dirpath: str | Path, every_n_steps: int) -> None:
        require_at_least("--run", 1, checkpoint_every_n_steps=every_n_steps)
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = every_n_steps
        self._saved_at = -1
        self._after_validation: int | None = None  # a step whose save waits for its validation

    def _save(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # every rank; rank 0 writes
        self._saved_at = trainer.global_step
        self._after_validation = None

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if self._after_validation is not None and self._after_validation != step:
            self._save(trainer)  # the validation did not come after all
        if step % self.every_n_steps == 0 and step != self._saved_at:
            if validation_due(trainer):
                self._after_validation = step
            else:
                self._save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._after_validation == trainer.global_step and not trainer.sanity_checking:
            self._save(trainer)
