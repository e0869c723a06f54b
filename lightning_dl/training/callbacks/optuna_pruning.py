"""Report a run's validation metric to its Optuna trial, and stop the run when the pruner says so.

The sweep adds this callback to each trial's fit command line; it reaches the trial through the
study's storage, from any process or machine. A pruned run stops after that validation and ends
as usual (tests its best checkpoint, writes summary.json); ``pruned_at_step`` tells the sweep.
(optuna-integration's Lightning callback needs the ``optuna.Trial`` in the same process.)
"""

from __future__ import annotations

import optuna
import pytorch_lightning as pl
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from data_modules.errors import UserInputError
from lightning_dl.sweep.study import make_pruner, open_storage
from lightning_dl.sweep.trials import Attr


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
        self.monitor, self.prunes = monitor, pruner != "none"
        self.pruner = make_pruner(pruner, startup_trials, warmup_steps)
        self.trial: optuna.Trial | None = None  # opened at the first report

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = trainer.is_global_zero and self._report(trainer)
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
        if self.trial is None:
            storage = open_storage(self.storage_url)
            study = optuna.load_study(
                study_name=self.study_name, storage=storage, pruner=self.pruner
            )
            study_id = storage.get_study_id_from_name(self.study_name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.trial_number)
            self.trial = optuna.Trial(study, trial_id)
        step, value = trainer.global_step, float(value)
        self.trial.report(value, step)
        if not self.prunes or not self.trial.should_prune():
            return False
        self.trial.set_user_attr(Attr.PRUNED_AT_STEP, step)
        rank_zero_info(
            f"[optuna] trial {self.trial_number} pruned at step {step} ({self.monitor}={value:.4f})"
        )
        return True
