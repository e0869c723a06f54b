"""A sweep's Optuna study and its workers (threads, commands, machines sharing its storage).

Ask and tell, not ``study.optimize``: the budget is checked across workers before a trial runs,
and a dead worker shows at once by its free flock, not after a heartbeat's grace period."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from data_modules.errors import UserInputError
from data_modules.io.atomic import write_json_atomic
from lightning_dl import compare
from lightning_dl.sweep.results import write_plots, write_tables
from lightning_dl.sweep.space import Space, cli_value, slug
from lightning_dl.sweep.trials import (
    LOCK,
    Attr,
    counted,
    held,
    lock,
    lock_path,
    run_dir_of,
    take_over,
)
from lightning_dl.training.run.directory import COMPLETED, read_summary

PRUNERS = ("median", "hyperband", "none")
SQLITE_TIMEOUT_S = 60  # seconds a worker waits for another one's write instead of failing
PRUNING_CALLBACK = "lightning_dl.training.callbacks.optuna_pruning.OptunaPruning"


def open_storage(url: str) -> BaseStorage:
    """sqlite:///PATH (one machine), an SQLAlchemy URL (a server) or journal:PATH (shared disk)."""
    journal, sqlite = url.startswith("journal:"), url.startswith("sqlite")
    if not journal and "://" not in url:
        raise UserInputError(
            f"--storage {url}: expected a URL: sqlite:///PATH, postgresql://..., mysql://... "
            "or journal:PATH"
        )
    name = url.removeprefix("journal:").removeprefix("//") if journal else url.split(":///")[-1]
    path = Path(name)
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
    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
        """No ``study.stop()`` after the last point: it works only inside ``study.optimize``."""


def make_sampler(name: str, space: Space, seed: int | None, startup_trials: int) -> BaseSampler:
    if name == "grid":
        return _Grid(space.grid(), seed=0)  # one fixed order shared by every worker
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "tpe":
        return TPESampler(seed=seed, n_startup_trials=startup_trials)
    raise UserInputError(f"--sampler {name}: expected grid, random or tpe")


def make_pruner(name: str, startup_trials: int = 5, warmup_steps: int = 0) -> BasePruner:
    """Built alike by the sweep and each trial's callback: Optuna does not store the pruner."""
    if name == "median":
        return MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if name == "hyperband":
        return HyperbandPruner(min_resource=warmup_steps or "auto")
    if name == "none":
        return NopPruner()
    raise ValueError(f"unknown pruner '{name}'; expected one of {list(PRUNERS)}")


def monitor_for(metric: str) -> str:
    """The validation metric watched for a summary.json key: best_val/acc, test/acc -> val/acc."""
    stage, _, rest = metric.removeprefix("best_").partition("/")
    return f"val/{rest}" if rest and stage in ("val", "test") else metric.removeprefix("best_")


@dataclass
class Sweep:
    """One sweep folder's settings and its study; :meth:`work` is one worker's loop."""

    configs: list[str]
    space: Space
    out: Path
    n_trials: int
    metric: str
    direction: str
    storage_url: str
    study_name: str
    sampler: BaseSampler
    pruner: str = "none"
    pruner_startup_trials: int = 5
    pruner_warmup_steps: int = 0
    extra: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _errors: list[BaseException] = field(default_factory=list, init=False)
    _children: dict[int, subprocess.Popen] = field(default_factory=dict, init=False)
    _results_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def open(self) -> Sweep:
        """Create the study, or join it; check it optimises the same metric the same way."""
        with held(self.out / LOCK):  # two workers creating a new SQLite file at once
            self.storage = open_storage(self.storage_url)
            self.study = optuna.create_study(
                storage=self.storage,
                study_name=self.study_name,
                sampler=self.sampler,
                direction=self.direction,
                load_if_exists=True,
            )
            attrs = self.study.user_attrs
            if "metric" not in attrs:
                self.study.set_user_attr("metric", self.metric)
                self.study.set_user_attr("space", self.space.source)
        if attrs.get("space", self.space.source) != self.space.source:
            raise UserInputError(
                f"--space: study '{self.study_name}' in {self.storage_url} was started with "
                f"another space ({attrs['space']}); Optuna keeps one space per study: use another "
                "--out (or --study-name)"
            )
        if attrs.get("metric", self.metric) != self.metric:
            raise UserInputError(
                f"--metric {self.metric}: study '{self.study_name}' in {self.storage_url} "
                f"optimises '{attrs['metric']}'; use that metric, or another --study-name/--out"
            )
        if self.study.direction.name.lower() != self.direction:
            raise UserInputError(
                f"--direction {self.direction}: study '{self.study_name}' in "
                f"{self.storage_url} is to {self.study.direction.name.lower()} {self.metric}"
            )
        write_json_atomic(
            self.out / "sweep.json",
            {"configs": self.configs, "space": self.space.source, "extra": self.extra,
             "metric": self.metric, "direction": self.direction, "storage": self.storage_url,
             "study_name": self.study_name, "n_trials": self.n_trials,
             "sampler": type(self.sampler).__name__, "pruner": self.pruner},
        )  # fmt: skip
        return self

    def recover(self, retry_failed: bool) -> bool:
        """Take over the trials whose worker is gone (and failed ones, if asked); whether any."""
        states = (TrialState.RUNNING, TrialState.FAIL) if retry_failed else (TrialState.RUNNING,)
        with held(self.out / LOCK):
            trials = counted(self.study.get_trials(deepcopy=False))
            return sum(self._recover_one(t) for t in trials if t.state in states) > 0

    def _recover_one(self, trial: FrozenTrial) -> bool:
        if (fd := take_over(trial, self.out)) is None:
            return False
        relative = str(run_dir_of(trial))
        try:
            if self.storage.get_trial(trial._trial_id).state != trial.state:
                return False  # its worker told Optuna before it let go of the lock
            summary = read_summary(self.out / relative)
            finished = summary.get("status") == COMPLETED
            if trial.state == TrialState.RUNNING and finished:
                self._log(trial.number, relative, "its worker is gone; the run had finished")
                self._tell(trial, summary)
                return True
            if trial.state == TrialState.RUNNING:
                self._fail(trial, "its worker stopped while the run trained")
            elif finished:
                return False  # failed after its run finished (no value for the metric): not a rerun
            resume = {Attr.RESUMES: trial.number, Attr.RESUME_RUN_DIR: relative}
            self.study.enqueue_trial(trial.params, user_attrs=resume)
            self._log(trial.number, relative, "retrying it (resumes its run directory)")
            return True
        finally:
            os.close(fd)

    def work(self) -> None:
        """Run trials until the budget is spent (by all workers together) or we are stopped."""
        try:
            while not self.stopping.is_set():
                if self.recover(retry_failed=False):
                    self._write_results()
                if (taken := self._next()) is None:
                    return
                self._run(*taken)
        except BaseException as error:  # re-raised by run() in the main thread
            self._errors.append(error)
            self.interrupt()

    def _next(self) -> tuple[optuna.Trial, str, int | None, bool] | None:
        """(trial, run dir, its lock or None, whether it resumes): an interrupted trial, else the
        budget's next one; None once it is spent."""
        with held(self.out / LOCK):
            trials = counted(self.study.get_trials(deepcopy=False))
            for t in trials:
                relative = str(run_dir_of(t))
                if t.state != TrialState.RUNNING or not t.user_attrs.get(Attr.INTERRUPTED):
                    continue
                if (fd := lock(lock_path(self.out, relative))) is not None:
                    self.storage.set_trial_user_attr(t._trial_id, Attr.INTERRUPTED, False)
                    return optuna.Trial(self.study, t._trial_id), relative, fd, True
            if len(trials) >= self.n_trials and TrialState.WAITING not in {t.state for t in trials}:
                return None
            trial = self.study.ask(self.space.distributions)
            if Attr.RESUMES not in trial.user_attrs and self.n_trials <= sum(
                t.number < trial.number for t in counted(self.study.get_trials(deepcopy=False))
            ):
                trial.set_user_attr(Attr.SURPLUS, True)  # a worker elsewhere took the last one
                self.study.tell(trial, state=TrialState.FAIL)
                return None
            relative = trial.user_attrs.get(
                Attr.RESUME_RUN_DIR, f"runs/{trial.number:03d}-{slug(self._values(trial))}"
            )
            if (fd := lock(lock_path(self.out, relative))) is not None:
                trial.set_user_attr(Attr.RUN_DIR, relative)  # only now may others check its lock
            return trial, relative, fd, Attr.RESUMES in trial.user_attrs

    def _values(self, trial: optuna.Trial) -> dict[str, Any]:
        return {key: trial.params[key] for key in self.space.distributions}

    def _run(self, trial: optuna.Trial, relative: str, fd: int | None, resumed: bool) -> None:
        """Train ``trial``, holding its lock until Optuna knows the outcome (none takes it over)."""
        run_dir = self.out / relative
        if fd is None:
            self._fail(trial, f"{run_dir} is in use by another worker")
            return
        try:
            trial.set_user_attr(Attr.WORKER, f"{socket.gethostname()}:{os.getpid()}")
            self._log(trial.number, relative, "resuming" if resumed else "starting")
            returncode = self._fit(trial.number, self._values(trial), run_dir, fd)
            summary = read_summary(run_dir)
            if returncode == 0 and summary.get("status") == COMPLETED:
                self._tell(trial, summary)
            elif self.stopping.is_set() or summary.get("status") == "interrupted":
                trial.set_user_attr(Attr.INTERRUPTED, True)  # no failure: continued in place later
                self._log(trial.number, relative, "interrupted; the same command continues it")
            else:
                status = summary.get("status", "failed")
                if returncode < 0:  # its summary still says running
                    status = f"killed by {signal.Signals(-returncode).name}"
                error = f"{status}: {summary.get('error') or f'exit code {returncode}'}"
                self._fail(trial, f"{error} (log: logs/{run_dir.name}.log)")
                self._log(trial.number, relative, error)
        finally:
            os.close(fd)
        self._write_results()

    def _fit(self, number: int, values: dict[str, Any], run_dir: Path, lock_fd: int) -> int:
        command = [sys.executable, "-m", "lightning_dl.fit"]
        command += [arg for config in self.configs for arg in ("--config", config)]
        command += ["--run.dir", str(run_dir), "--run.auto_resume", "true"]
        command += [arg for key, value in values.items() for arg in (f"--{key}", cli_value(value))]
        callback = {
            "class_path": PRUNING_CALLBACK,
            "init_args": {
                "storage": self.storage_url, "study_name": self.study_name,
                "trial_number": number, "monitor": monitor_for(self.metric),
                "pruner": self.pruner, "startup_trials": self.pruner_startup_trials,
                "warmup_steps": self.pruner_warmup_steps,
            },
        }  # fmt: skip
        command += [f"--trainer.callbacks+={json.dumps(callback)}", *self.extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTNING_DL_")}
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        with open(self.out / "logs" / f"{run_dir.name}.log", "a") as log:
            print(" ".join(command), file=log, flush=True)
            child = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, pass_fds=(lock_fd,)
            )
            self._children[number] = child
            try:
                return child.wait()
            finally:
                del self._children[number]

    def _tell(self, trial: FrozenTrial | optuna.Trial, summary: dict[str, Any]) -> None:
        attrs = self.storage.get_trial_user_attrs(trial._trial_id)
        number, value = trial.number, summary.get(self.metric)
        relative = attrs.get(Attr.RUN_DIR, "")
        if Attr.PRUNED_AT_STEP in attrs:
            self.study.tell(number, state=TrialState.PRUNED)
            self._log(number, relative, f"pruned at step {attrs[Attr.PRUNED_AT_STEP]}")
        elif isinstance(value, int | float):
            self.study.tell(number, value)
            self._log(number, relative, f"complete, {self.metric}={value:.4f}")
        else:
            keys = ", ".join(k for k, v in summary.items() if isinstance(v, int | float))
            self._fail(trial, f"summary.json has no number '{self.metric}' ({keys})")
            self._log(number, relative, f"failed: summary.json has no '{self.metric}' ({keys})")

    def _fail(self, trial: FrozenTrial | optuna.Trial, error: str) -> None:
        self.storage.set_trial_user_attr(trial._trial_id, Attr.ERROR, error)
        self.study.tell(trial.number, state=TrialState.FAIL)

    def _write_results(self) -> None:
        with self._results_lock:  # pyplot is not thread-safe; one writer per process
            write_tables(self.study, self.space, self.out, self.metric, self.direction)
            write_plots(self.study, self.out, self.metric)
            with contextlib.suppress(UserInputError):  # no trial has logged curves yet
                png = self.out / "compare.png"
                compare.write_comparison([self.out], png, monitor_for(self.metric))

    def _log(self, number: int, relative: str, message: str) -> None:
        print(f"[sweep] trial {number} ({relative}): {message}", flush=True)

    def interrupt(self) -> None:
        self.stopping.set()
        for child in list(self._children.values()):
            child.send_signal(signal.SIGINT)

    def run(self, workers: int) -> list[FrozenTrial]:
        self.recover(retry_failed=True)
        self._write_results()
        threads = [threading.Thread(target=self.work, name=f"worker{i}") for i in range(workers)]
        for thread in threads:
            thread.start()
        try:
            while any(thread.is_alive() for thread in threads):
                time.sleep(0.2)  # interruptible, unlike a join interrupted halfway
        except KeyboardInterrupt:
            self.interrupt()  # the workers record their trials as interrupted, then stop
            for thread in threads:
                thread.join()
            raise
        if self._errors:
            raise self._errors[0]
        self._write_results()
        return counted(self.study.get_trials(deepcopy=False))
