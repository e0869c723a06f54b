"""Which directory a run writes to, what it can be resumed from, and the rules that keep a
user's files safe.

- A new run gets ``<run.root>/<run.name>/<timestamp>/`` (``run.name``: the last config's stem)
  and ``<run.root>/<run.name>/latest`` points at it; an explicit ``--run.dir`` gets no link.
- An existing non-empty directory is written to only when it is a run of ours being resumed
  (``--ckpt_path last`` or ``--run.auto_resume true``), or a run of ours that failed or was
  interrupted before any checkpoint (its retry starts it over). Anything else is refused.
- Several processes: launchers start them seconds apart, and a node starting after rank 0 wrote
  ``summary.json`` would take the directory for someone else's. So only the future global rank
  0 checks it; the others :func:`follow` (``--run.dir`` required), and once the process group is
  up :class:`SameRunOnEveryRank` stops every rank if a node sees other files (a ``--run.dir``
  not on a filesystem all nodes share).
- Temp files of our atomic writes left by a killed process are removed when a run starts.
"""

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

LATEST = "latest"
LAST = Path("checkpoints") / "last.ckpt"
COMPLETED = "completed"
_WANDB_RUN = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-(?P<id>[a-z0-9]+)$")
# data_modules.io.atomic.atomic_path names its temp files ".<name>.<8 mkstemp characters>.tmp"
_OUR_TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
_SHOWN = 4  # entries named when refusing a directory
# What a run of ours writes into its directory (lightning_dl.training.run's package docstring).
_RUN_FILES = frozenset(
    {"summary.json", "config.yaml", "metrics.csv", "hparams.yaml", "curves.png", "wandb",
     "errors", "checkpoints"}
)  # fmt: skip
_RETRIED = ("failed", "interrupted")


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
    candidates = [
        d for d in runs if not d.is_symlink() and last_checkpoint(d) and not is_finished(d)
    ]
    return max(candidates, key=lambda d: (d / LAST).stat().st_mtime_ns, default=None)


def wandb_run_id(run_dir: str | Path) -> str | None:
    """Id of the newest wandb run stored in ``run_dir/wandb`` (``offline-run-<time>-<id>``)."""
    folder = Path(run_dir) / "wandb"
    names = [d.name for d in folder.iterdir()] if folder.is_dir() else []
    runs = [(n.removeprefix("offline-"), m["id"]) for n in names if (m := _WANDB_RUN.match(n))]
    return max(runs)[1] if runs else None


def config_stem(config: Any) -> str:
    """The stem of the last ``--config`` file, or "run"."""
    paths = config.get("config") or []
    if not paths or paths[-1] is None:
        return "run"
    return Path(str(getattr(paths[-1], "relative", paths[-1]))).stem


def run_name(config: Any) -> str:
    return config.run.name or config_stem(config)


def new_run_dir(root: str | Path, name: str) -> Path:
    """``root/name/<timestamp>``; two runs started in the same second get distinct folders."""
    run_dir = Path(root) / name / time.strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while run_dir.exists():
        run_dir = run_dir.with_name(f"{run_dir.name.split('_')[0]}_{suffix}")
        suffix += 1
    return run_dir


def resolve(config: Any) -> tuple[Path, str | None, bool]:
    """(run directory, checkpoint to resume from or None, whether we named the directory)."""
    run = config.run
    ckpt_path = config.get("ckpt_path")
    named_by_us = not run.dir
    if run.dir:
        run_dir = Path(run.dir)
    elif _several_processes(config):
        raise UserInputError(_RUN_DIR_NEEDED)
    elif run.auto_resume and (found := newest_unfinished_run(Path(run.root) / run_name(config))):
        run_dir = found
    else:
        run_dir = new_run_dir(run.root, run_name(config))
    if _resumes_last(config):
        last = last_checkpoint(run_dir)
        if last is None and ckpt_path == "last":
            raise InputFileNotFoundError(f"--ckpt_path last: no {LAST} in run directory {run_dir}")
        if last is not None and is_finished(run_dir) and not ckpt_path:
            raise UserInputError(
                f"--run.auto_resume: run directory {run_dir} holds a finished run "
                "(summary.json status 'completed'); choose another --run.dir"
            )
        ckpt_path = str(last) if last else None
    resuming_here = ckpt_path is not None and _inside(Path(ckpt_path), run_dir)
    _refuse_foreign(run_dir, resuming_here, auto_resume=run.auto_resume)
    return run_dir, ckpt_path, named_by_us


def follow(config: Any) -> tuple[Path, str | None]:
    """What a process other than global rank 0 runs in: ``--run.dir``, resumed by the same rule.

    It checks and refuses nothing (rank 0 does; see the module docstring).
    """
    if not config.run.dir:
        raise UserInputError(_RUN_DIR_NEEDED)
    run_dir = Path(config.run.dir)
    ckpt_path = config.get("ckpt_path")
    if _resumes_last(config):
        last = last_checkpoint(run_dir)
        ckpt_path = str(last) if last else None
    return run_dir, ckpt_path


_RUN_DIR_NEEDED = (
    "launched as one of several processes (WORLD_SIZE or SLURM_NTASKS > 1, or "
    "--trainer.num_nodes > 1: torchrun or srun): pass --run.dir so that every process writes "
    "to the same run directory"
)


def _several_processes(config: Any) -> bool:
    world = int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1)
    return world > 1 or int(config.trainer.get("num_nodes") or 1) > 1


def _resumes_last(config: Any) -> bool:
    ckpt_path = config.get("ckpt_path")
    return ckpt_path == "last" or (bool(config.run.auto_resume) and not ckpt_path)


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
        return  # auto_resume of a run of ours that never checkpointed starts it over
    if ours and _failed_before_any_checkpoint(run_dir, entries):
        return  # the retry of a run that failed (a wrong data_dir): nothing to keep or resume
    if (run_dir / "checkpoints").is_dir():
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


def _failed_before_any_checkpoint(run_dir: Path, entries: list[str]) -> bool:
    """True for a run of ours that failed or was interrupted and holds nothing but its own
    files, no checkpoint among them. (A run still training says "running": never taken.)"""
    if read_summary(run_dir).get("status") not in _RETRIED:
        return False
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        return False
    return all(name in _RUN_FILES or _OUR_TEMP_FILE.match(name) for name in entries)


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete temp files of our atomic writes that a killed process left in ``run_dir``."""
    folders = [d for d in (run_dir, run_dir / "checkpoints", run_dir / "errors") if d.is_dir()]
    removed = [
        p for d in folders for p in d.iterdir() if _OUR_TEMP_FILE.match(p.name) and p.is_file()
    ]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def point_latest(run_dir: Path) -> None:
    """``<run.root>/<run.name>/latest`` -> this run (only for directories we named)."""
    point_symlink(run_dir.parent / LATEST, run_dir.name)


def decides_run_directory() -> bool:
    """Whether this process will be global rank 0, from what the launcher set: torchrun's
    ``RANK``, srun's ``SLURM_PROCID``, Lightning's ``NODE_RANK`` and ``LOCAL_RANK``."""
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
        if differing := [(r, c) for r, c in enumerate(everyone) if c != leader]:
            rank, ckpt = differing[0]
            raise UserInputError(
                f"--run.dir {self.run_dir}: rank 0 resumes from {leader or 'nothing'}, rank "
                f"{rank} from {ckpt or 'nothing'}: every node must see the same run directory "
                "(put --run.dir on a filesystem that all nodes share)"
            )


def lost_connection(error: BaseException, rank: int, run_dir: str) -> ReportedError | None:
    """One line for a rank other than 0 whose peers went away (a ``DistError``: gloo and the
    store notice at once, NCCL after its timeout); the cause is where the first one stopped."""
    if rank == 0 or not isinstance(error, torch.distributed.DistError):
        return None
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return ReportedError(
        f"rank {rank} lost its connection to the other processes ({first}); the cause is in "
        "the output of the process that stopped first (usually global rank 0; once the run "
        f"has started, also in {run_dir}/summary.json)"
    )
