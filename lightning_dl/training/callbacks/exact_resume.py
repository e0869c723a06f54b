"""Make a resumed run continue exactly where its checkpoint left it: the data order (a sampler
seeded by (seed, epoch) that skips the batches done), each training batch's RNG states (from
(seed, epoch, batch, rank), not from incidental draws before it) and metrics.csv (torchmetrics
states and the row logged just after the checkpoint travel in it; later rows are dropped).
"""

from __future__ import annotations

import csv
import io
import os
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.apply_func import convert_tensors_to_scalars
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.trainer.states import TrainerFn
from torch.utils.data import DataLoader
from torchmetrics import Metric

from data_modules.batches.resumable_loader import ResumableDataLoader, make_resumable, make_sharded
from data_modules.io.atomic import write_text_atomic

METRIC_STATES = "lightning_dl_metric_states"
PENDING_ROW = "lightning_dl_pending_log_row"  # (metrics, step) logged just after the checkpoint


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone()


def _own_generator(loader: DataLoader) -> DataLoader:
    """An evaluation loader seeded by a generator of its own: Lightning iterates it when resuming
    at a validation step, which would otherwise shift the next training batch's randomness."""
    if loader.generator is None:
        loader.generator = torch.Generator().manual_seed(0)
    return loader


def truncate_metrics_csv(path: str, before_step: int) -> list[str]:
    """Keep only rows with ``step < before_step``; return the header (atomic rewrite)."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = [  # a row cut short by a crash (missing trailing fields) is dropped too
            r for r in reader if None not in r.values() and int(float(r["step"])) < before_step
        ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, out.getvalue())
    return header


def _csv_loggers(trainer: pl.Trainer) -> list[CSVLogger]:
    loggers = trainer.loggers if trainer.is_global_zero else []
    return [lg for lg in loggers if isinstance(lg, CSVLogger)]


def _unlogged_train_row(trainer: pl.Trainer) -> tuple[dict, int] | None:
    """The row Lightning logs right after ``on_train_batch_end`` (where a signal's checkpoint is
    written), as it will log it; None elsewhere."""
    loop = trainer.fit_loop.epoch_loop
    progress = loop.batch_progress.current
    connector = trainer._logger_connector
    if not trainer.training or progress.processed == progress.completed:
        return None  # not inside on_train_batch_end: this step's row is logged already
    if trainer.fit_loop._should_accumulate() or not connector.should_update_logs:
        return None
    metrics = convert_tensors_to_scalars(connector.metrics["log"])
    return {**metrics, "epoch": trainer.current_epoch}, loop._batches_that_stepped


class ExactResume(Callback):
    """Seeded, resumable data order, per-batch RNG states and metrics.csv; see the module."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        self.position = (0, 0)  # (epoch, index of the next training batch in that epoch)
        self._wrapped = False  # the datamodule's loader hooks
        self._counts_before_evaluation: dict[str, int] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or self._wrapped:
            return
        self._wrapped = True
        world, rank = trainer.world_size, trainer.global_rank
        distributed = world > 1 and trainer._accelerator_connector.use_distributed_sampler
        train = datamodule.train_dataloader
        replicas, own_rank = (world, rank) if distributed else (1, 0)
        options = {"num_replicas": replicas, "rank": own_rank, "seed": self.seed}
        datamodule.train_dataloader = lambda: make_resumable(
            train(), **options, position=lambda: self.position
        )
        for name in ("val_dataloader", "test_dataloader"):
            original = getattr(datamodule, name)

            def evaluation_dataloader(original: Any = original) -> Any:
                loaders = original()
                if distributed:
                    loaders = make_sharded(loaders, num_replicas=world, rank=rank)
                return apply_to_collection(loaders, DataLoader, _own_generator)

            setattr(datamodule, name, evaluation_dataloader)

    def _reseed(self, trainer: pl.Trainer) -> None:
        entropy = [self.seed, *self.position, trainer.global_rank]  # nothing that ran before
        seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) >> 1
        # torch.manual_seed costs ~0.1 ms (it visits every backend); the generators in use suffice
        torch.default_generator.manual_seed(seed)
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``estimated_stepping_batches`` builds the loader before the restore, which then does
        not reach it: a mid-epoch resume would restart the epoch without our position."""
        loader = trainer.train_dataloader
        epoch, done = self.position
        if isinstance(loader, ResumableDataLoader) and not loader.restored and done:
            loader.sampler.resume_at(epoch, done * (loader.batch_size or 1))
        self._reseed(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.position[0] != trainer.current_epoch:
            self.position = (trainer.current_epoch, 0)
        self._reseed(trainer)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        nxt, epoch = args[-1] + 1, trainer.current_epoch
        self.position = (epoch + 1, 0) if nxt >= trainer.num_training_batches else (epoch, nxt)
        self._reseed(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._reseed(trainer)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._counts_before_evaluation = {
            name: m._update_count for name, m in pl_module.named_modules() if isinstance(m, Metric)
        }

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        # not a validation's accumulators (Lightning resets them right after the checkpoint)
        before = self._counts_before_evaluation if trainer.validating else None
        checkpoint[METRIC_STATES] = {
            name: {
                "update_count": metric._update_count,
                "states": apply_to_collection(metric.metric_state, torch.Tensor, _copy),
            }
            for name, metric in pl_module.named_modules()
            if isinstance(metric, Metric)
            and (before is None or before.get(name) == metric._update_count)
        }
        if (row := _unlogged_train_row(trainer)) is not None:
            checkpoint[PENDING_ROW] = row
        for logger in _csv_loggers(trainer):
            logger.save()
            if os.path.isfile(path := logger.experiment.metrics_file_path):
                with open(path, "rb+") as f:
                    os.fsync(f.fileno())

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return  # testing a checkpoint continues nothing
        metrics = dict(pl_module.named_modules())
        for name, saved in checkpoint.get(METRIC_STATES, {}).items():
            metric = metrics.get(name)
            if isinstance(metric, Metric):
                for key, value in saved["states"].items():
                    value = apply_to_collection(value, torch.Tensor, torch.Tensor.to, metric.device)
                    setattr(metric, key, value)
                metric._update_count = saved["update_count"]
                metric._computed = None
        metrics, step = checkpoint.get(PENDING_ROW, (None, checkpoint["global_step"]))
        for logger in _csv_loggers(trainer):
            truncate_metrics_csv(logger.experiment.metrics_file_path, step)
            if metrics:
                logger.log_metrics(metrics, step)
                logger.save()

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "position": list(self.position)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed = int(state_dict["seed"])
        self.position = tuple(state_dict["position"])  # type: ignore[assignment]
