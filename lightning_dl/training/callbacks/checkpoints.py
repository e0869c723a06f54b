"""``last.ckpt`` holds the last step of every ending (Lightning's rewrites it only after a new
best); a run too short to validate validates once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

from data_modules.errors import require_at_least
from lightning_dl.training.run.signals import AgreedSignals


def _is_last_step(trainer: pl.Trainer, batch_idx: int) -> bool:
    if trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step:
        return True
    epochs = trainer.max_epochs  # None or -1: no limit by epochs
    last_epoch = epochs is not None and epochs > 0 and trainer.current_epoch + 1 >= epochs
    return last_epoch and batch_idx + 1 >= trainer.num_training_batches


class LastCheckpoint(Callback):
    """Write ``<dirpath>/last.ckpt`` every K steps, at a signal and at the last step.

    A step whose validation is due is written after it (a resumed run would skip the
    validation), after ModelCheckpoint's best. Under DDP the ranks agree on a signal every
    ``check_every_n_steps`` steps. A run that would end before any validation stops by
    ``should_stop`` at its last step, which makes the fit loop validate there.
    """

    def __init__(
        self,
        dirpath: str | Path,
        every_n_steps: int | None = None,
        check_every_n_steps: int | None = None,
    ) -> None:
        require_at_least(
            "--run",
            1,
            checkpoint_every_n_steps=every_n_steps,
            signal_check_every_n_steps=check_every_n_steps,  # <= 0: a collective every step
        )
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps, self.check_every_n_steps = every_n_steps, check_every_n_steps
        self._saved_at = self._checked_at = -1
        self._after_validation: int | None = None  # a step whose save waits for its validation
        self._held = False  # a signal waits for the validation under way
        self._validate_at_end = False

    def _save(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_at, self._after_validation = trainer.global_step, None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        best = getattr(trainer.checkpoint_callback, "best_model_path", None)
        self._validate_at_end = best == "" and trainer.enable_validation

    def _agree_if_due(self, trainer: pl.Trainer) -> None:
        connector = trainer._signal_connector
        if trainer.world_size == 1 or not isinstance(connector, AgreedSignals):
            return
        every = self.check_every_n_steps or trainer.log_every_n_steps or 1
        step = trainer.global_step
        if step % every == 0 and step != self._checked_at and not trainer.received_sigterm:
            self._checked_at = step  # once per optimizer step, also with gradient accumulation
            connector.agree()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        self._agree_if_due(trainer)
        if self._validate_at_end and _is_last_step(trainer, args[-1]):
            trainer.should_stop = True  # the fit loop validates before it stops
        step, every = trainer.global_step, self.every_n_steps
        if self._after_validation is not None and self._after_validation != step:
            self._save(trainer)  # the validation did not come after all
        ending = trainer.received_sigterm or trainer.should_stop or _is_last_step(trainer, args[-1])
        ending = ending and trainer.checkpoint_callback is not None
        if step != self._saved_at and (ending or (every and step % every == 0)):
            loop = trainer.fit_loop
            try:  # Lightning's own test of a validation right after this batch
                due = bool(loop.epoch_loop._should_check_val_fx(loop._data_fetcher))
            except Exception:  # a Lightning without these internals: write at once
                due = False
            if due and not trainer.received_sigterm:
                self._after_validation = step
            else:
                self._save(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if trainer.received_sigterm and fitting:
            trainer._signal_connector.received_sigterm = False  # finish this validation
            self._held = True

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.on_validation_start(trainer, None)  # the signal came during the validation

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self._validate_at_end = False
        stopped = trainer.should_stop and trainer.checkpoint_callback is not None  # early stopping
        stopped = stopped and self._saved_at != trainer.global_step
        if self._held:  # Lightning stops at the end of this training step
            trainer._signal_connector.received_sigterm = True
            self._held = False
            self._save(trainer)
        elif self._after_validation == trainer.global_step or stopped:
            self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A last resort (weight averaging has put its average into the model by now)."""
        if trainer.checkpoint_callback is not None and self._saved_at != trainer.global_step:
            self._save(trainer)
