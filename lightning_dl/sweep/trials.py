"""A sweep's trials as the workers share them: the attributes kept on each, which count, and
the flocks that say which trial a live worker runs (a free lock means a dead worker)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

LOCK = ".sweep.lock"  # the sweep folder's lock: held to ask for, or take, a trial and its lock


class Attr:
    """The user attributes kept on a trial."""

    RUN_DIR = "run_dir"  # the run directory, relative to the sweep folder; set once it is locked
    RESUME_RUN_DIR = "resume_run_dir"  # on an enqueued retry: the run directory it continues
    RESUMES = "resumes_trial"  # on an enqueued retry: the number of the trial it replaces
    SURPLUS = "surplus"  # asked by a worker after the budget was spent; never run
    ERROR = "error"  # why the trial failed
    WORKER = "worker"  # host:pid of the worker that ran it
    INTERRUPTED = "interrupted"  # its run was stopped (Ctrl-C): RUNNING still, continued in place
    PRUNED_AT_STEP = "pruned_at_step"  # set by the pruning callback: where its run stopped


def run_dir_of(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(Attr.RUN_DIR) or trial.user_attrs.get(Attr.RESUME_RUN_DIR)


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials counted against ``--n-trials`` and shown: not surplus, not replaced by a retry."""
    replaced = {t.user_attrs[Attr.RESUMES] for t in trials if Attr.RESUMES in t.user_attrs}
    return [t for t in trials if t.number not in replaced and not t.user_attrs.get(Attr.SURPLUS)]


def lock(path: Path, wait: bool = False) -> int | None:
    """The exclusive flock on ``path`` (``os.close`` releases it), or None while another holds it.
    The kernel drops it with its last descriptor (a worker's, its fit's) however they died."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """The lock on ``path``, waited for and held for a short critical section."""
    fd = lock(path, wait=True)
    try:
        yield
    finally:
        os.close(fd)


def lock_path(out: Path, relative: str) -> Path:
    """A trial's lock file: beside its run directory, which fit keeps for its own files."""
    return out / "locks" / f"{Path(relative).name}.lock"


def take_over(trial: FrozenTrial, out: Path) -> int | None:
    """The lock of a trial with a run directory and no worker, taken; None while a worker holds
    it, for an interrupted trial and for a running one whose lock is not on this machine's disk."""
    if not (relative := run_dir_of(trial)):
        return None  # it never ran, or its worker died before it had a run directory
    path = lock_path(out, relative)
    running = trial.state == TrialState.RUNNING
    if running and (trial.user_attrs.get(Attr.INTERRUPTED) or not path.is_file()):
        return None
    return lock(path)


def trial_state(trial: FrozenTrial, out: Path) -> str:
    """A RUNNING trial that no worker runs (stopped, or its worker gone) is ``interrupted``."""
    if trial.state == TrialState.RUNNING:
        if trial.user_attrs.get(Attr.INTERRUPTED):
            return "interrupted"
        if (fd := take_over(trial, out)) is not None:
            os.close(fd)
            return "interrupted"
    return trial.state.name.lower()
