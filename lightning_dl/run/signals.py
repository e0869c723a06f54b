"""SIGTERM, what SLURM and Kubernetes send before they kill a job: checkpoint, then exit 143.

Lightning turns SIGTERM into ``SIGTERMException`` (a ``SystemExit`` without a code) at the next
batch boundary, which would end the process with status 0, a success to a job chain. The run
instead writes ``last.ckpt`` at the signal (:class:`CheckpointOnTerminate`), records
``interrupted`` in summary.json, and exits with 143, as a shell reports a terminated job;
``--run.auto_resume true`` continues it, exactly. Under DDP the ranks can see the signal at
different steps, and a checkpoint needs them all, so there the last regular checkpoint is what
remains (``--run.checkpoint_every_n_steps`` bounds what is lost).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lightning_dl.errors import EXIT_TERMINATED


def is_termination(error: BaseException) -> bool:
    return isinstance(error, SIGTERMException)


def exit_status(error: BaseException) -> int | None:
    """143 for a terminated run, None for anything else."""
    return EXIT_TERMINATED if is_termination(error) else None


class CheckpointOnTerminate(Callback):
    """Write ``<checkpoint dir>/last.ckpt`` at the end of the batch during which SIGTERM came.

    That is where a periodic checkpoint is written, so the resumed run continues exactly. A
    validation that is due then, or under way when the signal comes, is finished first (Lightning
    would abandon it, and the resumed run would skip it): ModelCheckpoint then writes last.ckpt
    after it, as at every validation, and Lightning stops right after.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self._saved = False
        self._held = False

    def _applies(self, trainer: pl.Trainer) -> bool:
        return trainer.world_size == 1 and trainer.state.fn == TrainerFn.FITTING

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.received_sigterm and not self._saved and self._applies(trainer):
            trainer.save_checkpoint(self.path)
            self._saved = True

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.received_sigterm and self._applies(trainer) and not trainer.sanity_checking:
            trainer._signal_connector.received_sigterm = False  # finish this validation
            self._held = True

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.on_validation_start(trainer, None)  # the signal came during the validation

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._held:  # Lightning stops at the end of this training step
            trainer._signal_connector.received_sigterm = True
            self._held = False
