"""Write last.ckpt every K optimizer steps, independent of validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from lightning_dl.errors import require_at_least


class PeriodicCheckpoint(Callback):
    """Overwrite ``<dirpath>/last.ckpt`` (atomically, via the CLI's checkpoint IO) every K steps."""

    def __init__(self, dirpath: str | Path, every_n_steps: int) -> None:
        require_at_least("--run", 1, checkpoint_every_n_steps=every_n_steps)
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = every_n_steps
        self._saved_at = -1

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step % self.every_n_steps == 0 and step != self._saved_at:
            trainer.save_checkpoint(self.path)  # every rank calls it; rank 0 writes
            self._saved_at = step
