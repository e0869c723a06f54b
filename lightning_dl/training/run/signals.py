"""SIGTERM, Ctrl-C and SLURM's requeue signal: every rank stops at one step, after last.ckpt, and
exits 143 (1 for Ctrl-C; Lightning's ``SIGTERMException`` alone exits 0, a success to a job chain).
Lightning 2.6 broadcasts rank 0's flag in the handler and before every batch (unmatched when
another rank hears the signal first, and a host read a step); here the ranks all-reduce their
flags every ``check_every_n_steps`` steps; on a requeue signal rank 0 runs ``scontrol requeue``."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.trainer.connectors.signal_connector import _HandlersCompose, _SignalConnector
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from data_modules.errors import EXIT_FAILED, EXIT_TERMINATED

log = logging.getLogger(__name__)

TERMINATE, REQUEUE = 1, 2  # flag bits; the all-reduce takes their max (a requeue also stops)


def is_termination(error: BaseException) -> bool:
    return isinstance(error, SIGTERMException)


def exit_status(error: BaseException, trainer: pl.Trainer | None = None) -> int | None:
    """143 for a run a signal stopped (1 for Ctrl-C, as a shell's KeyboardInterrupt), else None."""
    if not is_termination(error):
        return None
    connector = getattr(trainer, "_signal_connector", None)
    return EXIT_FAILED if getattr(connector, "interrupted", False) else EXIT_TERMINATED


class AgreedSignals(_SignalConnector):
    """Lightning's signal connector without collectives: a signal sets this process's flag,
    which :meth:`agree` (LastCheckpoint, at the same step on every rank) makes everyone's."""

    def __init__(self, trainer: pl.Trainer, requeue_signal: signal.Signals | None) -> None:
        super().__init__(trainer)
        self.requeue_signal = requeue_signal
        self.pending = 0  # TERMINATE | REQUEUE bits this process received
        self.agreed = 0  # what all ranks agreed on (the max over ranks of ``pending``)

    def register_signal_handlers(self) -> None:
        super().register_signal_handlers()  # SIGTERM -> _sigterm_notifier_fn; originals saved
        self.pending = self.agreed = 0
        self.interrupted = False  # by Ctrl-C (SIGINT)
        if self.requeue_signal is not None:
            self._register_signal(self.requeue_signal, _HandlersCompose(self._sigterm_notifier_fn))
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._register_signal(signal.SIGINT, self._sigterm_notifier_fn)

    def _sigterm_notifier_fn(self, signum: Any, _: FrameType | None) -> None:
        """Every signal handled here: set this process's flag (and pass it on to children)."""
        requeue = signum == self.requeue_signal
        what = signal.Signals(signum).name + (" (checkpoint and requeue)" if requeue else "")
        log.info(f"[rank {self.trainer.global_rank}] received {what}")
        if signum == signal.SIGINT:
            self._register_signal(signal.SIGINT, signal.default_int_handler)  # a second one: now
            self.interrupted = True
        if not self.pending and not self.received_sigterm:
            launcher = self.trainer.strategy.launcher
            if launcher is not None:  # Lightning's own launcher
                launcher.kill(signal.SIGTERM)
        self.pending |= REQUEUE if requeue else TERMINATE
        if self.trainer.world_size == 1:
            self.agreed = self.pending
            self.received_sigterm = True

    def agree(self) -> bool:
        """One all-reduce (max; the strategy's ``reduce`` adds a barrier): True if any was set."""
        device = self.trainer.strategy.root_device
        flag = torch.tensor([self.pending], dtype=torch.int32, device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        self.agreed = int(flag.item())
        if self.agreed:
            self.received_sigterm = True
            what = "the requeue signal" if self.agreed & REQUEUE else "SIGTERM"
            rank_zero_info(
                f"{what} reached a process: every rank stops after step "
                f"{self.trainer.global_step} (last.ckpt, then exit {EXIT_TERMINATED})"
            )
        return bool(self.agreed)


def install_agreed_signals(trainer: pl.Trainer, requeue: bool = True) -> AgreedSignals:
    environment = trainer._accelerator_connector.cluster_environment
    requeue_signal = None
    if isinstance(environment, SLURMEnvironment) and environment.auto_requeue and requeue:
        requeue_signal = environment.requeue_signal or signal.SIGUSR1
        environment.auto_requeue = False  # ours: agreed, then our checkpoint IO, then scontrol
    trainer._signal_connector = connector = AgreedSignals(trainer, requeue_signal)
    epoch_loop = trainer.fit_loop.epoch_loop
    if hasattr(epoch_loop, "_broadcast_sigterm_tensor"):  # Lightning >= 2.6
        epoch_loop._broadcast_sigterm_tensor = lambda: None
    return connector


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for array jobs (as Lightning)."""
    if (array_job := os.environ.get("SLURM_ARRAY_JOB_ID")) is not None:
        return f"{array_job}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_asked(trainer: pl.Trainer) -> bool:
    connector = trainer._signal_connector
    return isinstance(connector, AgreedSignals) and bool(connector.agreed & REQUEUE)


def requeue_slurm_job() -> str:
    """Run ``scontrol requeue <job id>``; returns what happened, for summary.json and stdout."""
    job_id = slurm_job_id()
    if not job_id or not re.fullmatch(r"[0-9_]+", job_id):
        return f"not requeued: no valid SLURM_JOB_ID ({job_id!r})"
    try:
        done = subprocess.run(
            ["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"not requeued: scontrol requeue {job_id}: {error}"
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        return f"not requeued: scontrol requeue {job_id} exited {done.returncode} {why[0]}"
    return f"requeued SLURM job {job_id}"
