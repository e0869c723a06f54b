"""Sweeps on Optuna as they run: results, workers sharing one storage, resuming, pruning."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from pytorch_lightning.callbacks import Callback

from lightning_dl.sweep import load_space, main
from lightning_dl.sweep.study import open_storage
from tests.helpers.tiny_runs import HIDDEN, QUICK, ROOT

INIT_STD = "model.backbone.init_args.init_std"
TINY = [
    "--data.num_train", "256", "--data.num_val", "64", "--data.num_test", "64",
    "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
    "--trainer.max_steps", "6", "--trainer.val_check_interval", "3",
    "--trainer.log_every_n_steps", "3", "--trainer.logger", "null",  # metrics.csv only
]  # fmt: skip


class AtStep(Callback):
    """At ``step``, the first time only: ``kill`` the whole sweep (SIGKILL to its process group,
    the way a machine's crash ends it), ``interrupt`` it (Ctrl-C: SIGINT to the worker),
    ``terminate`` it (a scheduler's SIGTERM to the group), ``raise`` (the run fails) or
    ``kill_run`` (SIGKILL to this run alone, as the OOM killer does)."""

    def __init__(self, step: int, once_file: str, action: str) -> None:
        self.step, self.once_file, self.action = step, Path(once_file), action

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step != self.step or self.once_file.exists():
            return
        self.once_file.touch()
        if self.action == "raise":
            raise RuntimeError(f"injected failure at step {self.step}")
        if self.action == "interrupt":
            os.kill(os.getppid(), signal.SIGINT)
        elif self.action == "kill_run":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            os.killpg(os.getpgid(0), signal.SIGKILL if self.action == "kill" else signal.SIGTERM)


def _at_step(tmp_path: Path, action: str) -> str:
    """The command-line argument that adds :class:`AtStep` at step 4 to every run."""
    callback = {
        "class_path": "tests.test_sweep.AtStep",
        "init_args": {"step": 4, "once_file": str(tmp_path / action), "action": action},
    }
    return f"--trainer.callbacks+={json.dumps(callback)}"  # fmt: skip


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return {k: v for k, v in env.items() if not k.startswith("LIGHTNING_DL_")}


def _sweep_process(args: list[str]) -> subprocess.Popen:
    """``python -m lightning_dl.sweep ARGS`` in its own session (so it can be killed whole)."""
    return subprocess.Popen(
        [sys.executable, "-m", "lightning_dl.sweep", *args],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip


def _study(out: Path, storage: str | None = None) -> optuna.Study:
    url = storage or f"sqlite:///{out.resolve() / 'optuna.db'}"
    return optuna.load_study(study_name=out.name, storage=open_storage(url))


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def _val_acc(run_dir: Path) -> list[tuple[int, float]]:
    with open(run_dir / "metrics.csv") as f:
        return [(int(r["step"]), float(r["val/acc"])) for r in csv.DictReader(f) if r["val/acc"]]


def test_results_name_trials_no_worker_runs_interrupted_and_agree_on_order(tmp_path):
    """A RUNNING trial whose run was stopped, or whose worker is gone (its lock is free), is
    interrupted, not running; results.csv and results.md list the trials in one order."""
    from lightning_dl.sweep.results import write_tables
    from lightning_dl.sweep.trials import lock, lock_path

    space_file = tmp_path / "space.yaml"
    space_file.write_text("model.x: [1]\n")
    out = tmp_path / "sweep"
    out.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{out / 'optuna.db'}", direction="maximize")
    space = load_space(space_file)
    trials = [study.ask(space.distributions) for _ in range(6)]
    study.tell(trials[0], 0.5)
    study.tell(trials[1], 0.9)
    study.tell(trials[5], state=TrialState.FAIL)
    for trial in trials[2:5]:  # running: stopped; worker gone; worker alive (it holds the lock)
        trial.set_user_attr("run_dir", f"runs/{trial.number:03d}")
        os.close(lock(lock_path(out, f"runs/{trial.number:03d}")))
    trials[2].set_user_attr("interrupted", True)
    alive = lock(lock_path(out, "runs/004"))
    write_tables(study, space, out, "best_val/acc", "maximize")
    os.close(alive)
    rows = [(r["trial"], r["state"]) for r in _rows(out)]
    assert rows == [("1", "complete"), ("0", "complete"), ("2", "interrupted"),
                    ("3", "interrupted"), ("4", "running"), ("5", "fail")]  # fmt: skip
    table = (out / "results.md").read_text().splitlines()
    assert "6 trials: 2 complete, 2 interrupted, 1 running, 1 fail." in table[0]
    assert [(c[1].strip(), c[-2].strip()) for c in map(lambda x: x.split("|"), table[4:])] == rows


def test_two_worker_processes_share_one_storage_and_run_each_trial_once(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"{HIDDEN}: [[8], [16], [4, 4]]\n")
    out = tmp_path / "sweep"
    args = ["--config", QUICK, "--space", str(grid), "--out", str(out), "--", *TINY]
    workers = [_sweep_process(args), _sweep_process(args)]  # the default SQLite storage
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    trials = _study(out).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3  # nothing asked twice
    assert sorted(t.params[HIDDEN] for t in trials) == ["[16]", "[4, 4]", "[8]"]
    assert len({t.user_attrs["worker"] for t in trials}) == 2, outputs  # both workers trained
    started = [line for o in outputs for line in o.splitlines() if line.endswith(": starting")]
    assert len(started) == 3
    run_dirs = sorted(d for d in (out / "runs").iterdir() if not d.is_symlink())
    assert [d.name[:4] for d in run_dirs] == ["000-", "001-", "002-"]  # NNN: trial number
    assert sorted(d.name[4:] for d in run_dirs) == ["hidden=16", "hidden=4-4", "hidden=8"]
    for run_dir in run_dirs:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["global_step"] == 6
        log = (out / "logs" / f"{run_dir.name}.log").read_text()
        assert log.count("-m lightning_dl.fit") == 1  # trained once, by one worker
        # The value Optuna holds is the run's own figure, and val/acc reached it as logged.
        trial = next(t for t in trials if t.user_attrs["run_dir"] == f"runs/{run_dir.name}")
        assert trial.value == summary["best_val/acc"]
        reported = sorted(trial.intermediate_values.items())
        assert [(s + 1, v) for s, v in _val_acc(run_dir)] == reported

    rows = _rows(out)
    assert {r["state"] for r in rows} == {"complete"}
    table = (out / "results.md").read_text().splitlines()
    accs = [float(line.split("|")[3]) for line in table[4:]]
    assert len(accs) == 3 and accs == sorted(accs, reverse=True)
    # results.csv is in results.md's order: best first (equal values in the grid file's order)
    assert [r["trial"] for r in rows] == [line.split("|")[1].strip() for line in table[4:]]
    best_first = sorted(trials, key=lambda t: (-t.value, ["[8]", "[16]", "[4, 4]"].index(
        t.params[HIDDEN])))  # fmt: skip
    assert [r["trial"] for r in rows] == [str(t.number) for t in best_first]
    assert [float(r["value"]) for r in rows] == [t.value for t in best_first]
    for output in outputs:  # where the results are, as the last line
        last = output.splitlines()[-1]
        assert last.startswith(f"[sweep] results in {out}/: ") and "results.csv, results.md" in last
    for name in ("optimization_history.png", "parallel_coordinate.png", "param_importances.png",
                 "compare.png"):  # fmt: skip
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    compare_md = (out / "compare.md").read_text()
    assert compare_md.count("| hidden=") == 3
    for trial in trials:  # the best val/acc at the step the console and Optuna name (1-based)
        step, value = max(sorted(trial.intermediate_values.items()), key=lambda sv: sv[1])
        row = next(line for line in compare_md.splitlines() if f"hidden={trial.params[HIDDEN]} |"
                   in line)  # fmt: skip
        assert row.split("|")[7:9] == [f" {value:.4f} ", f" {step} "], row


def _one_trial_sweep(tmp_path: Path) -> tuple[Path, list[str]]:
    """(sweep folder, command line) of a one-point grid on tiny synthetic runs."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"{HIDDEN}: [[8]]\n")
    out = tmp_path / "sweep"
    return out, ["--config", QUICK, "--space", str(grid), "--out", str(out), "--", *TINY]


def test_killed_sweep_resumes_the_cut_off_trial_from_its_checkpoint(tmp_path, capsys):
    out, args = _one_trial_sweep(tmp_path)
    killed = _sweep_process([*args, _at_step(tmp_path, "kill")])
    output = killed.communicate(timeout=300)[0]
    assert killed.returncode == -signal.SIGKILL, output
    (cut,) = _study(out).get_trials()  # the first trial, left RUNNING by the dead worker
    assert cut.state == TrialState.RUNNING
    run_dir = out / cut.user_attrs["run_dir"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()  # written at step 3

    capsys.readouterr()
    assert main(args) == 0  # the same command again
    printed = capsys.readouterr().out
    assert f"trial 0 ({cut.user_attrs['run_dir']}): retrying it" in printed
    assert f"trial 1 ({cut.user_attrs['run_dir']}): resuming" in printed  # enqueued as trial 1
    trials = _study(out).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["resumes_trial"] == 0 and trials[1].params == cut.params
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] == 6
    log = (out / "logs" / f"{run_dir.name}.log").read_text()
    assert log.count("-m lightning_dl.fit") == 2
    assert f"Restoring states from the checkpoint path at {run_dir}/checkpoints/last.ckpt" in log
    assert [r["trial"] for r in _rows(out)] == ["1"]  # trial 0 is replaced by 1

    assert main(args) == 0  # finished: nothing runs again
    assert "starting" not in capsys.readouterr().out and len(_study(out).get_trials()) == 2


@pytest.mark.parametrize("action, status", [("interrupt", 130), ("terminate", 143)])
def test_an_interrupted_trial_is_continued_under_its_own_number(tmp_path, capsys, action, status):
    """Ctrl-C, or a scheduler's SIGTERM, during a trial: no failure is recorded; the same
    command continues that trial in place (same number, same run directory, checkpoint)."""
    out, args = _one_trial_sweep(tmp_path)
    args = [*args, _at_step(tmp_path, action)]
    stopped = _sweep_process(args)
    output = stopped.communicate(timeout=300)[0]
    assert stopped.returncode == status, output
    assert "interrupted; the same command continues it" in output
    assert f"[sweep] results in {out}/: " in output.splitlines()[-1]
    (cut,) = _study(out).get_trials()
    assert cut.state == TrialState.RUNNING and cut.user_attrs["interrupted"] is True
    assert [r["state"] for r in _rows(out)] == ["interrupted"]
    assert "1 trials: 1 interrupted." in (out / "results.md").read_text()

    capsys.readouterr()
    assert main(args) == 0
    assert f"trial 0 ({cut.user_attrs['run_dir']}): resuming" in capsys.readouterr().out
    (trial,) = _study(out).get_trials()  # still one trial, number 0: nothing shifted
    assert trial.number == 0 and trial.state == TrialState.COMPLETE
    assert [(r["trial"], r["state"]) for r in _rows(out)] == [("0", "complete")]
    run_dir = out / cut.user_attrs["run_dir"]
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 6
    log = (out / "logs" / f"{run_dir.name}.log").read_text()
    assert f"Restoring states from the checkpoint path at {run_dir}/checkpoints/last.ckpt" in log


@pytest.mark.parametrize(
    "action, error",
    [("raise", "failed: RuntimeError: injected failure at step 4"),
     ("kill_run", "killed by SIGKILL: exit code -9")],
)  # fmt: skip
def test_a_failed_trial_is_retried_when_the_command_runs_again(tmp_path, capsys, action, error):
    out, args = _one_trial_sweep(tmp_path)
    assert main([*args, _at_step(tmp_path, action)]) == 1
    assert f"(runs/000-hidden=8): {error}" in capsys.readouterr().out
    (failed,) = _study(out).get_trials()
    assert failed.state == TrialState.FAIL and error in failed.user_attrs["error"]
    assert _rows(out)[0]["state"] == "fail"
    assert "1 trials: 1 fail." in (out / "results.md").read_text()

    assert main(args) == 0
    assert "trial 0 (runs/000-hidden=8): retrying it" in capsys.readouterr().out
    retried = _study(out).get_trials()[1]
    assert retried.state == TrialState.COMPLETE and retried.user_attrs["resumes_trial"] == 0
    run_dir = out / failed.user_attrs["run_dir"]
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 6
    log = (out / "logs" / f"{run_dir.name}.log").read_text()
    assert f"Restoring states from the checkpoint path at {run_dir}/checkpoints/last.ckpt" in log


def test_a_trial_that_falls_behind_is_pruned_through_a_journal_storage(tmp_path, capsys):
    """Trial 0 learns; trial 1 (all-zero weights: chance accuracy) is pruned at its first report
    by the median pruner, from inside its fit process, through the journal file. The two points
    are enqueued first (Optuna's way to try given points), so their order is known."""
    out = tmp_path / "sweep"
    storage = f"journal:{tmp_path / 'journal.log'}"
    study = optuna.create_study(study_name="sweep", storage=open_storage(storage),
                                direction="maximize")  # fmt: skip
    study.enqueue_trial({INIT_STD: 0.05})
    study.enqueue_trial({INIT_STD: 0.0})
    space = tmp_path / "space.yaml"
    space.write_text(f"{INIT_STD}: {{choices: [0.05, 0.0]}}\n")
    steps = ["--trainer.max_steps", "8", "--trainer.val_check_interval", "4",
             "--trainer.log_every_n_steps", "4", "--data.num_val", "256"]  # fmt: skip
    assert main(["--config", QUICK, "--space", str(space), "--out", str(out), "--storage", storage,
                 "--sampler", "random", "--n-trials", "2", "--pruner", "median",
                 "--pruner-startup-trials", "1", "--", *TINY, *steps]) == 0  # fmt: skip
    assert "trial 1 (runs/001-init_std=0): pruned at step 4" in capsys.readouterr().out
    good, pruned = _study(out, storage).get_trials()
    assert good.state == TrialState.COMPLETE and pruned.state == TrialState.PRUNED
    assert pruned.user_attrs["pruned_at_step"] == 4
    for trial in (good, pruned):  # the intermediate values are val/acc as it was logged
        logged = _val_acc(out / trial.user_attrs["run_dir"])
        assert [(s + 1, v) for s, v in logged] == sorted(trial.intermediate_values.items())
    assert pruned.intermediate_values[4] < good.intermediate_values[4]
    summary = json.loads((out / pruned.user_attrs["run_dir"] / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] == 4  # stopped, tested
    assert "test/acc" in summary
    rows = {r["trial"]: r for r in _rows(out)}
    assert rows["1"]["state"] == "pruned" and rows["1"]["global_step"] == "4"
    assert rows["0"]["state"] == "complete" and rows["0"]["global_step"] == "8"
