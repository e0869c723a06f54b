"""Fault-injection callbacks for the reliability tests, selected on the command line with
``--trainer.callbacks+=tests.helpers.faults.<Name>``; they make a run die the way real ones do."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from signal import Signals
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


class KillAtStep(Callback):
    """SIGKILL this process (no cleanup at all) when training reaches ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class TermAtStep(Callback):
    """Send this process SIGTERM (what SLURM and Kubernetes send first) at ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class RaiseOnRank(Callback):
    """Raise RuntimeError in one rank only, at ``step``."""

    def __init__(self, rank: int, step: int) -> None:
        self.rank, self.step = rank, step

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            raise RuntimeError(f"injected failure on rank {self.rank} at step {self.step}")


class RecordBatches(Callback):
    """Write every training batch's first feature column per rank and epoch to ``out_dir``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.rows: dict[int, list[torch.Tensor]] = {}

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        x = batch[0]  # tensors until the end: no host read per step (helpers/host_reads)
        self.rows.setdefault(trainer.current_epoch, []).append(x[:, :2].detach().clone())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"rank{trainer.global_rank}.json"
        rows = {str(k): torch.cat(v).cpu().tolist() for k, v in self.rows.items()}
        path.write_text(json.dumps(rows))


class NanInputOnRank(Callback):
    """Put a NaN into one rank's batch at ``step``, so only that rank's loss is NaN."""

    def __init__(self, rank: int, step: int) -> None:
        self.rank, self.step = rank, step

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            batch[0][0, 0] = float("nan")  # the batch is a gathered copy, not the dataset


class SimulatedKill(BaseException):
    """Stands for SIGKILL in an in-process run: nothing of ours catches it or writes after it
    (ModelCheckpoint saves nothing on an exception unless asked)."""


class KillDuringValidation(Callback):
    """Stop the run dead during the validation at global step ``step`` (not the sanity check)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step and not trainer.sanity_checking:
            raise SimulatedKill(f"killed during the validation at step {self.step}")


class KillAfterWrite(Callback):
    """Stop the run dead right after checkpoint file ``name`` is written at ``step``: e.g. after
    ModelCheckpoint's best.ckpt and before its last.ckpt."""

    def __init__(self, name: str, step: int) -> None:
        self.name, self.step = name, step

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        save = io.save_checkpoint

        def save_then_die(checkpoint: dict, path: Any, storage_options: Any = None) -> None:
            save(checkpoint, path, storage_options)
            if Path(path).name == self.name and trainer.global_step == self.step:
                raise SimulatedKill(f"killed after writing {path} at step {self.step}")

        io.save_checkpoint = save_then_die


class SignalOnRank(Callback):
    """Send this process ``signal`` (a name: SIGTERM, SIGUSR1) on global rank ``rank`` at ``step``.

    Under DDP the ranks of a real cluster hear a signal at different moments, or only some of
    them do: one of these per rank that is to be signalled.
    """

    def __init__(self, rank: int, step: int, signal: str = "SIGTERM") -> None:
        self.rank, self.step, self.signum = rank, step, Signals[signal]

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class RecordFinalWeights(Callback):
    """Save the module's weights as training leaves them (ended, or stopped by an exception)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.save(pl_module.state_dict(), self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.on_train_end(trainer, pl_module)
