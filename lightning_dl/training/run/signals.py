"""SIGTERM (and SLURM's requeue signal): every rank stops at one step, after one checkpoint.

What a cluster sends before it kills a job (SIGTERM; ``#SBATCH --signal=SIGUSR1@90`` for a
requeue) ends the run at a batch boundary: ``last.ckpt`` is written there
(:class:`CheckpointOnTerminate`), summary.json says ``interrupted``, and every process exits 143,
as a shell reports a terminated job (Lightning's ``SIGTERMException`` alone is a ``SystemExit``
with status 0, a success to a job chain). ``--run.auto_resume true`` continues the run exactly.

Under DDP the ranks hear a signal at different moments (two nodes are two machines) and a
checkpoint needs them all. Lightning 2.6 broadcasts rank 0's flag in the signal handler itself
and again before every training batch, reading it back on the host
(Lightning-AI/pytorch-lightning#21487): an unmatched collective whenever a rank other than 0 is
signalled first (the runs fail or hang), a flag that ignores every rank but 0, and a collective
plus a host read on every step. :class:`AgreedSignals` replaces it: a signal only sets this
process's flag; every ``check_every_n_steps`` optimizer steps (default: the logging interval,
steps that read the host anyway) the ranks all-reduce their flags (max) in one collective, and
when any rank was signalled all of them stop at that step. A signal therefore takes effect
within that many steps: keep ``check_every_n_steps x step time`` well below the grace time the
scheduler gives (SLURM's KillWait, 30 s by default; torchrun waits 30 s before SIGKILL).

SLURM requeue: with Lightning's SLURM environment (processes started by ``srun``), its own
handler (which saves ``hpc_ckpt_N.ckpt`` from inside the signal handler, a collective at an
arbitrary point) is turned off; the requeue signal is agreed on like SIGTERM, and once the
checkpoint is written global rank 0 runs ``scontrol requeue $SLURM_JOB_ID``
(:func:`requeue_slurm_job`). The requeued job runs the same command: ``--run.dir`` with the job
id and ``--run.auto_resume true`` continue the same run directory.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.connectors.signal_connector import (
    _HandlersCompose,
    _SignalConnector,
)
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from data_modules.errors import EXIT_TERMINATED

log = logging.getLogger(__name__)

TERMINATE, REQUEUE = 1, 2  # flag bits; the all-reduce takes their max (a requeue also stops)


def is_termination(error: BaseException) -> bool:
    return isinstance(error, SIGTERMException)


def exit_status(error: BaseException) -> int | None:
    """143 for a terminated run, None for anything else."""
    return EXIT_TERMINATED if is_termination(error) else None


class AgreedSignals(_SignalConnector):
    """Lightning's signal connector without collectives: a signal sets this process's flag.

    With one process the flag is Lightning's ``received_sigterm`` at once, as before. With
    several, :meth:`agree` (called by :class:`CheckpointOnTerminate` at the same step on every
    rank) makes it everyone's.
    """

    def __init__(self, trainer: pl.Trainer, requeue_signal: signal.Signals | None) -> None:
        super().__init__(trainer)
        self.requeue_signal = requeue_signal
        self.pending = 0  # TERMINATE | REQUEUE bits this process received
        self.agreed = 0  # what all ranks agreed on (the max over ranks of ``pending``)

    def register_signal_handlers(self) -> None:
        super().register_signal_handlers()  # SIGTERM -> _sigterm_notifier_fn; originals saved
        self.pending = self.agreed = 0
        if self.requeue_signal is not None:
            self._register_signal(self.requeue_signal, _HandlersCompose(self._requeue_notifier))

    def _raise_flag(self, bit: int, what: str) -> None:
        log.info(f"[rank {self.trainer.global_rank}] received {what}")
        if not self.pending and not self.received_sigterm:
            launcher = self.trainer.strategy.launcher
            if launcher is not None:  # Lightning's own launcher: pass it on to its children
                launcher.kill(signal.SIGTERM)
        self.pending |= bit
        if self.trainer.world_size == 1:
            self.agreed |= bit
            self.received_sigterm = True

    def _sigterm_notifier_fn(self, signum: Any, _: FrameType | None) -> None:
        self._raise_flag(TERMINATE, "SIGTERM")

    def _requeue_notifier(self, signum: Any, _: FrameType | None) -> None:
        self._raise_flag(REQUEUE, f"{signal.Signals(signum).name} (checkpoint and requeue)")

    def agree(self) -> bool:
        """One all-reduce (max) of every rank's flag; True (on every rank) if any was raised.

        ``torch.distributed`` directly: the strategy's ``reduce`` adds a barrier before it.
        """
        flag = torch.tensor(
            [self.pending], dtype=torch.int32, device=self.trainer.strategy.root_device
        )
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
    """Put :class:`AgreedSignals` in place of the trainer's signal connector (before fitting).

    Also removes Lightning's per-batch SIGTERM broadcast (a collective and a host read on every
    step, which the agreement replaces) and, under SLURM, Lightning's own requeue handler.
    """
    environment = trainer._accelerator_connector.cluster_environment
    requeue_signal = None
    if isinstance(environment, SLURMEnvironment) and environment.auto_requeue and requeue:
        requeue_signal = environment.requeue_signal or signal.SIGUSR1
        environment.auto_requeue = False  # ours: agreed, then our checkpoint IO, then scontrol
    connector = AgreedSignals(trainer, requeue_signal)
    trainer._signal_connector = connector
    epoch_loop = trainer.fit_loop.epoch_loop
    if hasattr(epoch_loop, "_broadcast_sigterm_tensor"):  # Lightning >= 2.6
        epoch_loop._broadcast_sigterm_tensor = lambda: None
    return connector


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for array jobs (as Lightning)."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
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


class CheckpointOnTerminate(Callback):
    """Write ``<checkpoint dir>/last.ckpt`` at the end of the batch at which the run stops.

    One process: the batch during which the signal came. Several: the first step divisible by
    ``check_every_n_steps`` after it, agreed by :meth:`AgreedSignals.agree` (every rank calls
    ``save_checkpoint``; global rank 0 writes). That is where a periodic checkpoint is written,
    so the resumed run continues exactly. A validation that is due then, or under way when the
    signal comes, is finished first (Lightning would abandon it, and the resumed run would skip
    it): ModelCheckpoint then writes last.ckpt after it, as at every validation, and Lightning
    stops right after.
    """

    def __init__(self, dirpath: str | Path, check_every_n_steps: int | None = None) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self.check_every_n_steps = check_every_n_steps
        self._saved = False
        self._held = False
        self._checked_at = -1

    def _fitting(self, trainer: pl.Trainer) -> bool:
        return trainer.state.fn == TrainerFn.FITTING

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
        if not self._fitting(trainer):
            return
        self._agree_if_due(trainer)
        if trainer.received_sigterm and not self._saved and trainer.checkpoint_callback:
            trainer.save_checkpoint(self.path, weights_only=False)
            self._saved = True

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.received_sigterm and self._fitting(trainer) and not trainer.sanity_checking:
            trainer._signal_connector.received_sigterm = False  # finish this validation
            self._held = True

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.on_validation_start(trainer, None)  # the signal came during the validation

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._held:  # Lightning stops at the end of this training step
            trainer._signal_connector.received_sigterm = True
            self._held = False
