"""Several processes, one run directory: global rank 0 decides it, the others follow.

Launchers (torchrun on each node, srun) start every process at once, and on real clusters
"at once" means seconds apart. If every node checked ``--run.dir`` itself, a node starting
after rank 0 had written ``summary.json`` would refuse the directory as someone else's. So only
the process that will be global rank 0 checks, refuses, resumes or creates; the others take
``--run.dir`` (required with several processes) and the checkpoint by the same rule without
checking anything (:func:`lightning_dl.training.run.directory.follow`), and once the process group
is up
:class:`SameRunOnEveryRank` compares every rank's checkpoint with rank 0's in one collective:
a node that does not see the same files (a ``--run.dir`` not on a filesystem shared by all
nodes) stops every rank with one clear line, before any training.
"""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from data_modules.errors import ReportedError, UserInputError


def decides_run_directory() -> bool:
    """Whether this process will be global rank 0, from what the launcher set before start.

    torchrun sets ``RANK``, srun ``SLURM_PROCID``; Lightning's own launcher (one command per
    node, ``NODE_RANK``) starts children with ``LOCAL_RANK`` > 0.
    """
    env = os.environ
    if env.get("RANK"):
        return int(env["RANK"]) == 0
    if env.get("SLURM_PROCID") and int(env.get("SLURM_NTASKS") or 1) > 1:
        return int(env["SLURM_PROCID"]) == 0
    node = int(env.get("NODE_RANK") or env.get("GROUP_RANK") or 0)
    return node == 0 and int(env.get("LOCAL_RANK") or 0) == 0


class SameRunOnEveryRank(Callback):
    """At the start of fitting, every rank must resume from the checkpoint rank 0 resumes from."""

    def __init__(self, run_dir: str, ckpt_path: str | None) -> None:
        self.run_dir = run_dir
        self.ckpt_path = ckpt_path

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size == 1 or stage != "fit" or not torch.distributed.is_initialized():
            return
        everyone: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(everyone, self.ckpt_path)  # one collective, once
        leader = everyone[0]
        differing = [(rank, ckpt) for rank, ckpt in enumerate(everyone) if ckpt != leader]
        if differing:
            rank, ckpt = differing[0]
            raise UserInputError(
                f"--run.dir {self.run_dir}: rank 0 resumes from {leader or 'nothing'}, rank "
                f"{rank} from {ckpt or 'nothing'}: every node must see the same run directory "
                "(put --run.dir on a filesystem that all nodes share)"
            )


def lost_connection(error: BaseException, rank: int, run_dir: str) -> ReportedError | None:
    """One line for a rank other than 0 whose peers went away (rank 0 refused or failed first).

    gloo and the rendezvous store notice a closed connection at once and raise a ``DistError``
    (NCCL only after its timeout); the cause is in the output of the process that stopped first.
    """
    if rank == 0 or not isinstance(error, torch.distributed.DistError):
        return None
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return ReportedError(
        f"rank {rank} lost its connection to the other processes ({first}); the cause is in "
        "the output of the process that stopped first (usually global rank 0; once the run "
        f"has started, also in {run_dir}/summary.json)"
    )
