"""Report a run's validation metric to its Optuna trial, and stop the run when the pruner says so.

The sweep starts every trial as its own ``python -m lightning_dl.fit`` process and adds this
callback on its command line. The callback reaches the trial through the study's storage (the
same SQLite file, database or journal the sweep uses), so a trial running in a subprocess, or
on another machine, can be pruned. A pruned run is not an error: it stops at the end of that
validation, tests its best checkpoint and writes its summary.json as usual; the sweep then
records the trial as pruned (the ``pruned_at_step`` user attribute set here says so).
"""

from __future__ import annotations

import optuna
import pytorch_lightning as pl
from optuna.storages import BaseStorage
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from data_modules.errors import UserInputError
from lightning_dl.sweep.pruners import PRUNED_AT_STEP, make_pruner
from lightning_dl.sweep.storage import open_storage


class OptunaPruning(pl.Callback):
    """``monitor`` at every validation becomes the trial's intermediate value at ``global_step``."""

    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_number: int,
        monitor: str = "val/acc",
        pruner: str = "median",
        startup_trials: int = 5,
        warmup_steps: int = 0,
    ) -> None:
        self.storage_url, self.study_name, self.trial_number = storage, study_name, trial_number
        self.monitor = monitor
        self.pruner = make_pruner(pruner, startup_trials, warmup_steps)
        self.prunes = pruner != "none"
        self._connection: tuple[BaseStorage, optuna.Study, int] | None = None

    def _connect(self) -> tuple[BaseStorage, optuna.Study, int]:
        """(storage, study, trial id), opened at the first report."""
        if self._connection is None:
            storage = open_storage(self.storage_url)
            study = optuna.load_study(
                study_name=self.study_name, storage=storage, pruner=self.pruner
            )
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                storage.get_study_id_from_name(self.study_name), self.trial_number
            )
            self._connection = storage, study, trial_id
        return self._connection

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            prune = self._report(trainer)
        if trainer.world_size > 1:
            prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            trainer.should_stop = True

    def _report(self, trainer: pl.Trainer) -> bool:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            if not self.prunes:
                return False
            logged = sorted(k for k in trainer.callback_metrics if k.startswith("val/"))
            raise UserInputError(
                f"pruning watches '{self.monitor}', which this run does not log at validation "
                f"(logged: {', '.join(logged) or 'nothing'})"
            )
        storage, study, trial_id = self._connect()
        step, value = trainer.global_step, float(value)
        storage.set_trial_intermediate_value(trial_id, step, value)
        if not self.prunes or not self.pruner.prune(study, storage.get_trial(trial_id)):
            return False
        storage.set_trial_user_attr(trial_id, PRUNED_AT_STEP, step)
        rank_zero_info(
            f"[optuna] trial {self.trial_number} pruned at step {step} ({self.monitor}={value:.4f})"
        )
        return True
