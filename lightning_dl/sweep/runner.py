"""The sweep's workers: ask Optuna for a trial, train it as a normal run, tell Optuna the result.

Every trial is ``python -m lightning_dl.fit`` in a subprocess, in its own run directory
``<sweep>/runs/<NNN>-<key=value,...>`` (NNN: the trial number), with the pruning callback on
its command line. Any number of workers (threads of one command, other commands on the same
machine, or on other machines) share the study through its storage. A trial whose worker died
(see :mod:`lightning_dl.sweep.locks`) is taken over by the next worker that looks: it is
marked failed and enqueued again with the same parameters, and the new trial resumes the same
run directory from its last checkpoint. Trials that failed are retried once each time the
command is started again, so re-running a crashed or partly failed sweep continues it. A trial
whose run was interrupted (Ctrl-C, or SIGTERM to its run) is no failure: it stays running in
the study, and the next worker continues it in place, under its own number, from its run's
last checkpoint.
"""

from __future__ import annotations

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
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from data_modules.errors import UserInputError
from data_modules.io.atomic import write_json_atomic
from lightning_dl.sweep import locks
from lightning_dl.sweep.pruners import PRUNED_AT_STEP, monitor_for
from lightning_dl.sweep.results import write_all
from lightning_dl.sweep.space import Space, cli_value, slug
from lightning_dl.sweep.storage import open_storage
from lightning_dl.sweep.trial_attrs import (
    ERROR,
    INTERRUPTED,
    RESUME_RUN_DIR,
    RESUMES,
    RUN_DIR,
    SURPLUS,
    WORKER,
    counted,
    run_dir_of,
)
from lightning_dl.training.run.directory import COMPLETED, read_summary

LOCK = ".sweep.lock"
PRUNING_CALLBACK = "lightning_dl.training.callbacks.optuna_pruning.OptunaPruning"


class _Grid(GridSampler):
    """Optuna's GridSampler, without its ``study.stop()`` after the last grid point: that call
    works only inside ``study.optimize`` and the workers here ask and tell; they stop by the
    trial budget, which for a grid is the grid's size."""

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
        pass


def require_grid(space: Space) -> None:
    if not space.is_grid:
        ranges = [p.key for p in space.params if p.grid is None]
        raise UserInputError(
            f"--sampler grid needs a list of values for every key; {', '.join(ranges)} "
            "given as a distribution (use --sampler random or tpe)"
        )


def make_sampler(name: str, space: Space, seed: int | None, startup_trials: int) -> BaseSampler:
    if name == "grid":
        require_grid(space)
        return _Grid(space.grid(), seed=0)  # one fixed order shared by every worker
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "tpe":
        return TPESampler(seed=seed, n_startup_trials=startup_trials)
    raise UserInputError(f"--sampler {name}: expected grid, random or tpe")


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
    study: optuna.Study = field(init=False)
    storage: BaseStorage = field(init=False)
    study_id: int = field(init=False)
    _errors: list[BaseException] = field(default_factory=list, init=False)
    _children: dict[int, subprocess.Popen] = field(default_factory=dict, init=False)
    _results_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    stopping: threading.Event = field(default_factory=threading.Event, init=False)

    def open(self) -> Sweep:
        """Create the study, or join it; check it optimises the same metric the same way."""
        self.out.mkdir(parents=True, exist_ok=True)
        with locks.held(self.out / LOCK):  # two workers creating a new SQLite file at once
            self.storage = open_storage(self.storage_url)
            self.study = optuna.create_study(
                storage=self.storage,
                study_name=self.study_name,
                sampler=self.sampler,
                direction=self.direction,
                load_if_exists=True,
            )
            self.study_id = self.storage.get_study_id_from_name(self.study_name)
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

    # ---------------------------------------------------------------- taking over dead trials
    def recover(self, retry_failed: bool) -> None:
        """Finish or re-enqueue trials whose worker is gone (and failed ones if asked)."""
        for trial in counted(self.study.get_trials(deepcopy=False)):
            if trial.state == TrialState.RUNNING or (
                retry_failed and trial.state == TrialState.FAIL
            ):
                self._recover_one(trial)

    def _counted_now(self, number: int) -> FrozenTrial | None:
        """Trial ``number`` as the storage has it now; None if it no longer counts."""
        return next((t for t in counted(self.study.get_trials()) if t.number == number), None)

    def _trial_lock(self, run_dir: Path) -> Path:
        """The trial's lock file: beside its run directory, which fit keeps for its own files."""
        return self.out / "locks" / f"{run_dir.name}.lock"

    def _recover_one(self, trial: FrozenTrial) -> None:
        relative = run_dir_of(trial)
        if not relative:
            return  # its worker died before it had a run directory, or it never ran
        run_dir = self.out / relative
        if trial.state == TrialState.RUNNING and not (self._trial_lock(run_dir)).is_file():
            return  # a run directory this machine cannot see (another machine's local disk)
        if trial.state == TrialState.RUNNING and trial.user_attrs.get(INTERRUPTED):
            return  # continued in place by the next worker (_adopt_interrupted)
        fd = locks.try_lock(self._trial_lock(run_dir))
        if fd is None:
            return  # alive
        try:
            now = self._counted_now(trial.number)
            if now is None or now.state != trial.state:
                return  # another worker took it over first
            summary = read_summary(run_dir)
            if now.state == TrialState.RUNNING:
                if summary.get("status") == COMPLETED:  # its fit finished after the worker died
                    self._log(now.number, relative, "its worker is gone; the run had finished")
                    self._tell(now.number, summary)
                    return
                self._set_attr(now.number, ERROR, "its worker stopped while the run trained")
                self.study.tell(now.number, state=TrialState.FAIL)
            elif summary.get("status") == COMPLETED:
                return  # failed after its run finished (no value for the metric): not a rerun
            self.study.enqueue_trial(
                now.params, user_attrs={RESUMES: now.number, RESUME_RUN_DIR: relative}
            )
            self._log(now.number, relative, "retrying it (resumes its run directory)")
        finally:
            locks.release(fd)
        self._write_results()

    # ---------------------------------------------------------------- one worker
    def work(self) -> None:
        """Run trials until the budget is spent (by all workers together) or we are stopped."""
        try:
            while not self.stopping.is_set():
                self.recover(retry_failed=False)
                if adopted := self._adopt_interrupted():
                    self._run(*adopted)
                    continue
                trial = self._ask()
                if trial is None:
                    return
                self._run(trial)
        except BaseException as error:  # re-raised by run() in the main thread
            self._errors.append(error)
            self.interrupt()

    def _ask(self) -> optuna.Trial | None:
        """The next trial, or None when ``n_trials`` trials exist (all workers counted)."""
        with locks.held(self.out / LOCK):
            trials = counted(self.study.get_trials(deepcopy=False))
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if len(trials) >= self.n_trials and not waiting:
                return None
            trial = self.study.ask()
            if RESUMES in trial.user_attrs:
                return trial
            earlier = [
                t for t in counted(self.study.get_trials(deepcopy=False)) if t.number < trial.number
            ]
            if len(earlier) < self.n_trials:
                return trial
            trial.set_user_attr(SURPLUS, True)  # a worker elsewhere took the last one
            self.study.tell(trial, state=TrialState.FAIL)
            return None

    def _adopt_interrupted(self) -> tuple[optuna.Trial, int] | None:
        """An interrupted trial whose run no one is continuing, with its lock now held by us."""
        with locks.held(self.out / LOCK):
            for trial in counted(self.study.get_trials(deepcopy=False)):
                relative = run_dir_of(trial)
                if trial.state != TrialState.RUNNING or not trial.user_attrs.get(INTERRUPTED):
                    continue
                fd = locks.try_lock(self._trial_lock(self.out / str(relative)))
                if fd is None:
                    continue  # another worker continues it
                self._set_attr(trial.number, INTERRUPTED, False)
                return optuna.Trial(self.study, trial._trial_id), fd
        return None

    def _run(self, trial: optuna.Trial, fd: int | None = None) -> None:
        """Train ``trial`` (holding its lock ``fd`` already when it is continued in place)."""
        values = self.space.suggest(trial)
        attrs = trial.user_attrs
        relative = (
            attrs.get(RUN_DIR)
            or attrs.get(RESUME_RUN_DIR)
            or f"runs/{trial.number:03d}-{slug(values)}"
        )
        run_dir = self.out / relative
        continued = fd is not None
        fd = fd if fd is not None else locks.try_lock(self._trial_lock(run_dir))
        if fd is None:
            trial.set_user_attr(ERROR, f"{run_dir} is in use by another worker")
            self.study.tell(trial, state=TrialState.FAIL)
            return
        try:  # the lock is held until Optuna knows the outcome, so no one takes the trial over
            trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
            trial.set_user_attr(RUN_DIR, relative)  # only now may others check its lock
            resumed = RESUMES in trial.user_attrs or continued
            self._log(trial.number, relative, "resuming" if resumed else "starting")
            returncode = self._fit(trial.number, values, run_dir, fd)
            summary = read_summary(run_dir)
            if returncode == 0 and summary.get("status") == COMPLETED:
                self._tell(trial.number, summary)
            elif self.stopping.is_set() or summary.get("status") == "interrupted":
                trial.set_user_attr(INTERRUPTED, True)  # no failure: continued in place later
                self._log(trial.number, relative, "interrupted; the same command continues it")
            else:
                status = summary.get("status", "failed")
                error = f"{status}: {summary.get('error') or f'exit code {returncode}'}"
                trial.set_user_attr(ERROR, f"{error} (log: logs/{run_dir.name}.log)")
                self.study.tell(trial, state=TrialState.FAIL)
                self._log(trial.number, relative, error)
        finally:
            locks.release(fd)
        self._write_results()

    def _fit(self, number: int, values: dict[str, Any], run_dir: Path, lock_fd: int) -> int:
        command = [sys.executable, "-m", "lightning_dl.fit"]
        for config in self.configs:
            command += ["--config", config]
        command += ["--run.dir", str(run_dir), "--run.auto_resume", "true"]
        for key, value in values.items():
            command += [f"--{key}", cli_value(value)]
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
        logs = self.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{run_dir.name}.log", "a") as log:
            log.write(" ".join(command) + "\n")
            log.flush()
            child = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, pass_fds=(lock_fd,)
            )
            self._children[number] = child
            try:
                return child.wait()
            finally:
                del self._children[number]

    def _tell(self, number: int, summary: dict[str, Any]) -> None:
        """Record a finished run: pruned, complete with its metric, or failed without one."""
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        attrs = self.storage.get_trial_user_attrs(trial_id)
        relative = attrs.get(RUN_DIR, "")
        value = summary.get(self.metric)
        if PRUNED_AT_STEP in attrs:
            self.study.tell(number, state=TrialState.PRUNED)
            self._log(number, relative, f"pruned at step {attrs[PRUNED_AT_STEP]}")
        elif isinstance(value, int | float):
            self.study.tell(number, value)
            self._log(number, relative, f"complete, {self.metric}={value:.4f}")
        else:
            keys = ", ".join(k for k, v in summary.items() if isinstance(v, int | float))
            self._set_attr(number, ERROR, f"summary.json has no number '{self.metric}' ({keys})")
            self.study.tell(number, state=TrialState.FAIL)
            self._log(number, relative, f"failed: summary.json has no '{self.metric}' ({keys})")

    def _set_attr(self, number: int, key: str, value: Any) -> None:
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        self.storage.set_trial_user_attr(trial_id, key, value)

    def _write_results(self) -> None:
        with self._results_lock:  # pyplot is not thread-safe; one writer per process
            write_all(self.study, self.space, self.out, self.metric, self.direction)

    def _log(self, number: int, relative: str, message: str) -> None:
        print(f"[sweep] trial {number} ({relative}): {message}", flush=True)

    def interrupt(self) -> None:
        """Stop asking for trials and pass an interrupt on to the runs in flight."""
        self.stopping.set()
        for child in list(self._children.values()):
            child.send_signal(signal.SIGINT)

    def run(self, workers: int) -> list[FrozenTrial]:
        """``workers`` threads each running :meth:`work`; the counted trials at the end."""
        self.recover(retry_failed=True)
        self._write_results()
        done = [threading.Event() for _ in range(workers)]

        def worker(finished: threading.Event) -> None:
            try:
                self.work()
            finally:
                finished.set()

        for i, finished in enumerate(done):
            threading.Thread(target=worker, args=(finished,), name=f"worker{i}").start()
        try:
            while not all(d.is_set() for d in done):
                time.sleep(0.2)  # interruptible, unlike a join interrupted halfway
        except KeyboardInterrupt:
            self.interrupt()  # the workers record their trials as failed, then stop
            for finished in done:
                finished.wait()
            raise
        if self._errors:
            raise self._errors[0]
        self._write_results()
        return counted(self.study.get_trials(deepcopy=False))
