"""The user attributes the sweep keeps on each Optuna trial, and which trials count."""

from __future__ import annotations

from optuna.trial import FrozenTrial

RUN_DIR = "run_dir"  # the run directory, relative to the sweep folder; set once it is locked
RESUME_RUN_DIR = "resume_run_dir"  # on an enqueued retry: the run directory it continues
RESUMES = "resumes_trial"  # on an enqueued retry: the number of the trial it replaces
SURPLUS = "surplus"  # asked by a worker after the budget was spent; never run
ERROR = "error"  # why the trial failed
WORKER = "worker"  # host:pid of the worker that ran it
INTERRUPTED = "interrupted"  # its run was stopped (Ctrl-C): it stays RUNNING, continued in place


def run_dir_of(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(RUN_DIR) or trial.user_attrs.get(RESUME_RUN_DIR)


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count against ``--n-trials`` and are shown: all but surplus ones and
    those replaced by a retry."""
    replaced = {t.user_attrs[RESUMES] for t in trials if RESUMES in t.user_attrs}
    return [t for t in trials if t.number not in replaced and not t.user_attrs.get(SURPLUS)]
