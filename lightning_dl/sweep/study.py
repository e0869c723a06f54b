"""A sweep's Optuna study: its storage, sampler and pruner, the attributes it keeps on each
trial, and the file locks that tell whether a trial's worker is alive."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy.exc
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from data_modules.errors import UserInputError
from lightning_dl.sweep.space import Space

LOCK = ".sweep.lock"  # the sweep folder's lock: held to ask for, or take, a trial and its lock
PRUNERS = ("median", "hyperband", "none")
SQLITE_TIMEOUT_S = 60  # seconds a worker waits for another one's write instead of failing


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


def open_storage(url: str) -> BaseStorage:
    """``sqlite:///PATH`` (one machine), any SQLAlchemy URL (a database server that many machines
    share) or ``journal:PATH`` (Optuna's append-only file, on a filesystem they share)."""
    journal, sqlite = url.startswith("journal:"), url.startswith("sqlite")
    if not journal and "://" not in url:
        raise UserInputError(
            f"--storage {url}: expected a URL: sqlite:///PATH, postgresql://..., mysql://... "
            "or journal:PATH"
        )
    path = Path(
        url.removeprefix("journal:").removeprefix("//") if journal else url.split(":///")[-1]
    )
    if (journal or sqlite) and not path.parent.is_dir():
        raise UserInputError(f"--storage {url}: folder {path.parent} does not exist")
    if journal:
        return JournalStorage(JournalFileBackend(str(path)))
    try:
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite else {}
        return RDBStorage(url, engine_kwargs=kwargs)
    except (ImportError, sqlalchemy.exc.SQLAlchemyError) as error:
        raise UserInputError(f"--storage {url}: cannot open it ({error})") from error


class _Grid(GridSampler):
    """GridSampler without its ``study.stop()`` after the last point, which works only inside
    ``study.optimize``: the workers ask and tell, and stop at the budget (the grid's size)."""

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
        pass


def make_sampler(name: str, space: Space, seed: int | None, startup_trials: int) -> BaseSampler:
    if name == "grid":
        return _Grid(space.grid(), seed=0)  # one fixed order shared by every worker
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "tpe":
        return TPESampler(seed=seed, n_startup_trials=startup_trials)
    raise UserInputError(f"--sampler {name}: expected grid, random or tpe")


def make_pruner(name: str, startup_trials: int = 5, warmup_steps: int = 0) -> BasePruner:
    """Built alike by the sweep and by the callback in each trial's run: Optuna does not store
    the pruner. ``hyperband``'s smallest budget is ``warmup_steps`` (0: Optuna's choice)."""
    if name == "median":
        return MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if name == "hyperband":
        return HyperbandPruner(min_resource=warmup_steps or "auto")
    if name == "none":
        return NopPruner()
    raise ValueError(f"unknown pruner '{name}'; expected one of {list(PRUNERS)}")


def monitor_for(metric: str) -> str:
    """The metric logged at validation that stands for the sweep's ``metric`` (a summary.json
    key): ``best_val/acc`` and ``test/acc`` are watched as ``val/acc``."""
    stage, _, rest = metric.removeprefix("best_").partition("/")
    return f"val/{rest}" if rest and stage in ("val", "test") else metric.removeprefix("best_")


def run_dir_of(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(Attr.RUN_DIR) or trial.user_attrs.get(Attr.RESUME_RUN_DIR)


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count against ``--n-trials`` and are shown: all but surplus ones and
    those replaced by a retry."""
    replaced = {t.user_attrs[Attr.RESUMES] for t in trials if Attr.RESUMES in t.user_attrs}
    return [t for t in trials if t.number not in replaced and not t.user_attrs.get(Attr.SURPLUS)]


def lock(path: Path, wait: bool = False) -> int | None:
    """A descriptor holding the exclusive flock on ``path``, or None while another one holds it.

    A worker holds its trial's lock, and hands it to the trial's fit process, for as long as the
    trial runs. The kernel drops a flock with the last descriptor, however its holders died
    (SIGKILL, power loss; on NFSv4 once the dead machine's lease runs out), so a trial lock that
    can be taken marks a trial whose worker is gone. ``os.close`` releases it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
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
    """The lock of a trial that has a run directory and no worker, taken; None while a worker
    holds it, for an interrupted trial (the next worker continues it in place) and for a
    running one whose lock this machine cannot see (another machine's local disk)."""
    relative = run_dir_of(trial)
    if not relative:
        return None  # it never ran, or its worker died before it had a run directory
    path = lock_path(out, relative)
    if trial.state == TrialState.RUNNING and (
        trial.user_attrs.get(Attr.INTERRUPTED) or not path.is_file()
    ):
        return None
    return lock(path)
