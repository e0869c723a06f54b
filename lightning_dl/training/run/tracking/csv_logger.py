"""A CSVLogger that can continue a run's metrics.csv instead of deleting it.

Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts, so a resumed run
would lose every row logged before the interruption. With ``keep_existing=True`` (the CLI sets
it when resuming) the file is kept, its columns are remembered, and new rows are appended; the
rows the killed run logged after its checkpoint are dropped by
:class:`~lightning_dl.training.callbacks.exact_resume.ExactResume` when the checkpoint is loaded.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class _Writer(ExperimentWriter):
    keep_existing = False

    def _check_log_dir_exists(self) -> None:
        """Keep metrics.csv and its columns, or start it afresh (without Lightning's warning)."""
        if not os.path.isfile(self.metrics_file_path):
            return
        if not self.keep_existing:
            os.remove(self.metrics_file_path)
            return
        with open(self.metrics_file_path, newline="") as f:
            self.metrics_keys = list(next(csv.reader(f), []))


class _KeepingWriter(_Writer):
    keep_existing = True


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` plus ``keep_existing``: append to an existing metrics.csv (resumed runs)."""

    def __init__(self, *args: Any, keep_existing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_existing = keep_existing

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            writer = _KeepingWriter if self.keep_existing else _Writer
            self._experiment = writer(log_dir=self.log_dir)
        return super().experiment
