"""Which directory a run writes to and resumes from. A non-empty one is written to only if it is
our run being resumed, or one that failed before any checkpoint. Only the future global rank 0
checks (a late node would take rank 0's fresh summary.json for someone else's); the others
:func:`follow`, and :class:`SameRunOnEveryRank` catches a ``--run.dir`` the nodes do not share."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from data_modules.errors import InputFileNotFoundError, ReportedError, UserInputError
from data_modules.io.atomic import point_symlink

LAST = Path("checkpoints") / "last.ckpt"
COMPLETED = "completed"
_WANDB_RUN = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-(?P<id>[a-z0-9]+)$")
# data_modules.io.atomic.atomic_path names its temp files ".<name>.<8 mkstemp characters>.tmp"
_OUR_TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
_SHOWN = 4  # entries named when refusing a directory
_RUN_FILES = frozenset(
    {"summary.json", "config.yaml", "metrics.csv", "hparams.yaml", "curves.png", "wandb",
     "errors", "checkpoints"}
)  # fmt: skip
_RETRIED = ("failed", "interrupted")
_RUN_DIR_NEEDED = (
    "launched as one of several processes (WORLD_SIZE or SLURM_NTASKS > 1, or "
    "--trainer.num_nodes > 1: torchrun or srun): pass --run.dir so that every process writes "
    "to the same run directory"
)


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``summary.json``; empty if there is none yet (or it is unreadable)."""
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def is_finished(run_dir: str | Path) -> bool:
    return read_summary(run_dir).get("status") == COMPLETED


def last_checkpoint(run_dir: str | Path) -> Path | None:
    path = Path(run_dir) / LAST
    return path if path.is_file() else None


def newest_unfinished_run(parent: str | Path) -> Path | None:
    """The unfinished run under ``parent`` (``<run.root>/<run.name>``) whose last.ckpt is newest."""
    runs = Path(parent).iterdir() if Path(parent).is_dir() else ()
    found = [d for d in runs if not d.is_symlink() and last_checkpoint(d) and not is_finished(d)]
    return max(found, key=lambda d: (d / LAST).stat().st_mtime_ns, default=None)


def wandb_run_id(run_dir: str | Path, wait_for_new_segment: bool = False) -> str | None:
    """Id of the newest wandb run in ``run_dir/wandb``. wandb names a segment by the second it
    starts (local or UTC), so ``wait_for_new_segment`` waits out that second: a resume within it
    would write into the last segment's folder and truncate it."""
    folder = Path(run_dir) / "wandb"
    names = [d.name for d in folder.iterdir()] if folder.is_dir() else []
    runs = [(n.removeprefix("offline-"), m["id"]) for n in names if (m := _WANDB_RUN.match(n))]
    if not runs:
        return None
    newest, run_id = max(runs)
    now = {time.strftime("%Y%m%d_%H%M%S", clock()) for clock in (time.localtime, time.gmtime)}
    if wait_for_new_segment and newest.split("-")[1] in now:
        time.sleep(1.01 - time.time() % 1)
    return run_id


def run_name(config: Any) -> str:
    """``--run.name``, else the stem of the last ``--config`` file, else "run"."""
    paths = config.get("config") or [None]
    if config.run.name or paths[-1] is None:
        return config.run.name or "run"
    return Path(str(getattr(paths[-1], "relative", paths[-1]))).stem


def resolve(config: Any) -> tuple[Path, str | None, bool]:
    """(run directory, checkpoint to resume from or None, whether we named the directory)."""
    run, given = config.run, config.get("ckpt_path")
    world = int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1)
    if run.dir:
        run_dir = Path(run.dir)
    elif world > 1 or int(config.trainer.get("num_nodes") or 1) > 1:
        raise UserInputError(_RUN_DIR_NEEDED)
    elif run.auto_resume and (found := newest_unfinished_run(Path(run.root) / run_name(config))):
        run_dir = found
    else:
        stamp = Path(run.root) / run_name(config) / time.strftime("%Y%m%d-%H%M%S")
        run_dir, suffix = stamp, 0
        while run_dir.exists():  # two runs started in the same second get distinct folders
            suffix += 1
            run_dir = stamp.with_name(f"{stamp.name}_{suffix}")
    ckpt_path = _resume_from(config, run_dir)
    if ckpt_path is None and given == "last":
        raise InputFileNotFoundError(f"--ckpt_path last: no {LAST} in run directory {run_dir}")
    if ckpt_path is not None and not given and is_finished(run_dir):
        raise UserInputError(
            f"--run.auto_resume: run directory {run_dir} holds a finished run "
            "(summary.json status 'completed'); choose another --run.dir"
        )
    resuming_here = ckpt_path is not None and _inside(Path(ckpt_path), run_dir)
    _refuse_foreign(run_dir, resuming_here, auto_resume=run.auto_resume)
    return run_dir, ckpt_path, not run.dir


def follow(config: Any) -> tuple[Path, str | None]:
    """A process other than global rank 0: ``--run.dir``, resumed by the same rule, no refusals."""
    if not config.run.dir:
        raise UserInputError(_RUN_DIR_NEEDED)
    return Path(config.run.dir), _resume_from(config, Path(config.run.dir))


def _resume_from(config: Any, run_dir: Path) -> str | None:
    """``--ckpt_path``; for ``last`` or an auto_resume without one, the run's last.ckpt or None."""
    ckpt_path = config.get("ckpt_path")
    if ckpt_path != "last" and (ckpt_path or not config.run.auto_resume):
        return ckpt_path
    return str(last) if (last := last_checkpoint(run_dir)) else None


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _refuse_foreign(run_dir: Path, resuming_here: bool, auto_resume: bool) -> None:
    """Raise unless ``run_dir`` is absent, empty, or a run of ours that is being resumed."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise UserInputError(f"--run.dir {run_dir} exists and is not a directory")
    entries = sorted(p.name for p in run_dir.iterdir())
    ours = (run_dir / "summary.json").is_file()
    if not entries or resuming_here or (auto_resume and ours):
        return  # an auto_resume that finds no checkpoint starts the run over
    checkpoints = run_dir / "checkpoints"
    if ours and read_summary(run_dir).get("status") in _RETRIED:
        # failed or interrupted before any checkpoint (a wrong data_dir): nothing to keep
        only_ours = all(name in _RUN_FILES or _OUR_TEMP_FILE.match(name) for name in entries)
        if only_ours and not (checkpoints.is_dir() and any(checkpoints.iterdir())):
            return
    if checkpoints.is_dir():
        raise UserInputError(
            f"run directory {run_dir} already holds a run (checkpoints/ exists); pass "
            "--ckpt_path last (or --run.auto_resume true) to continue it, or choose "
            "another --run.dir (or --run.dir null)"
        )
    shown = ", ".join(entries[:_SHOWN]) + (", ..." if len(entries) > _SHOWN else "")
    raise UserInputError(
        f"run directory {run_dir} already exists and holds files ({shown}) but no run to "
        "resume; nothing in it is overwritten: choose another --run.dir (or --run.dir null)"
    )


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete temp files of our atomic writes that a killed process left in ``run_dir``."""
    folders = [d for d in (run_dir, run_dir / "checkpoints", run_dir / "errors") if d.is_dir()]
    stale = [
        p for d in folders for p in d.iterdir() if _OUR_TEMP_FILE.match(p.name) and p.is_file()
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def point_latest(run_dir: Path) -> None:
    """``<run.root>/<run.name>/latest`` -> this run (only for directories we named)."""
    point_symlink(run_dir.parent / "latest", run_dir.name)


def decides_run_directory() -> bool:
    """Whether this process will be global rank 0, from the launcher's environment."""
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
        self.run_dir, self.ckpt_path = run_dir, ckpt_path

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size == 1 or stage != "fit" or not torch.distributed.is_initialized():
            return
        everyone: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(everyone, self.ckpt_path)  # one collective, once
        leader = everyone[0]
        for rank, ckpt in enumerate(everyone):
            if ckpt != leader:
                raise UserInputError(
                    f"--run.dir {self.run_dir}: rank 0 resumes from {leader or 'nothing'}, rank "
                    f"{rank} from {ckpt or 'nothing'}: every node must see the same run directory "
                    "(put --run.dir on a filesystem that all nodes share)"
                )


def lost_connection(error: BaseException, rank: int, run_dir: str) -> ReportedError | None:
    """One line for a rank other than 0 whose peers went away (a ``DistError``)."""
    if rank == 0 or not isinstance(error, torch.distributed.DistError):
        return None
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return ReportedError(
        f"rank {rank} lost its connection to the other processes ({first}); the cause is in "
        "the output of the process that stopped first (usually global rank 0; once the run "
        f"has started, also in {run_dir}/summary.json)"
    )
