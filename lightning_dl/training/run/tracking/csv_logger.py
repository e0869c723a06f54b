"""A CSVLogger that continues a run's metrics.csv (Lightning's deletes an existing one); ExactResume
drops the rows a killed run logged after its checkpoint."""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class _Writer(ExperimentWriter):
    def __init__(self, log_dir: str, keep_existing: bool) -> None:
        self.keep_existing = keep_existing
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path) and not self.keep_existing:
            os.remove(self.metrics_file_path)  # afresh, without Lightning's warning
        elif os.path.isfile(self.metrics_file_path):  # kept, with its columns
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = list(next(csv.reader(f), []))


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
            self._experiment = _Writer(self.log_dir, self.keep_existing)
        return super().experiment
