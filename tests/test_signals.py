"""SLURM's requeue in one process, and what ``scontrol requeue`` is asked and answers.

The two-node cases (ranks that hear signals at different steps) are in tests/test_multinode.py.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from lightning_dl.fit import main
from lightning_dl.training.run import signals
from lightning_dl.training.run.checkpoint_io import read_checkpoint
from tests.helpers.tiny_runs import tiny_args


def _stand_in(tmp_path, name: str, body: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def _slurm(monkeypatch, bin_dir, job_id: str = "31") -> None:
    """The environment srun gives one task (Lightning then uses its SLURMEnvironment)."""
    for key, value in {
        "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_ID": job_id,
        "SLURM_JOB_NAME": "lightning-dl", "SLURM_NODELIST": "127.0.0.1",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)


def test_requeue_signal_in_one_process_checkpoints_then_requeues(tmp_path, monkeypatch):
    asked = tmp_path / "asked"
    _slurm(monkeypatch, _stand_in(tmp_path, "scontrol", f'echo "$@" >> {asked}'))
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        main(
            tiny_args(
                "--run.dir", str(run_dir), "--trainer.logger", "[]",
                "--trainer.precision", "32-true",
                "--trainer.callbacks+=tests.helpers.faults.SignalOnRank",
                "--trainer.callbacks.rank", "0", "--trainer.callbacks.step", "13",
                "--trainer.callbacks.signal", "SIGUSR1",
            )
        )  # fmt: skip
    assert stopped.value.code == 143
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["global_step"] == 14
    assert summary["requeue"] == "requeued SLURM job 31"
    assert asked.read_text() == "requeue 31\n"
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 14


def test_what_scontrol_is_asked_and_how_a_refusal_reads(tmp_path, monkeypatch):
    _slurm(monkeypatch, _stand_in(tmp_path, "scontrol", 'echo "Invalid job id" >&2; exit 1'))
    assert signals.slurm_job_id() == "31"
    assert signals.requeue_slurm_job() == (
        "not requeued: scontrol requeue 31 exited 1 Invalid job id"
    )
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    assert signals.slurm_job_id() == "40_7"  # array jobs are requeued task by task
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert signals.requeue_slurm_job().startswith("not requeued: scontrol requeue 40_7: ")


def _last_not_best(tmp_path, name: str, *extra: str, steps: int = 30) -> list[str]:
    """A run whose last validation is not its best (mode min on a rising val/acc: the first
    validation stays the best), recording the weights it ends with in ``<name>.pt``."""
    return tiny_args(
        "--run.dir", str(tmp_path / name), "--trainer.logger", "[]", "--checkpoint.mode", "min",
        "--trainer.callbacks+=tests.helpers.faults.RecordFinalWeights",
        "--trainer.callbacks.path", str(tmp_path / f"{name}.pt"), *extra, steps=steps,
    )  # fmt: skip


def _assert_last_is_final(tmp_path, name: str) -> dict:
    last = read_checkpoint(tmp_path / name / "checkpoints" / "last.ckpt")
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert last["global_step"] == summary["global_step"], name
    final = torch.load(tmp_path / f"{name}.pt", weights_only=True)
    assert all(torch.equal(w, last["state_dict"][k]) for k, w in final.items()), name
    return last


def test_last_ckpt_holds_the_last_step_when_completed_interrupted_and_resumed(tmp_path):
    main(_last_not_best(tmp_path, "whole"))
    whole = _assert_last_is_final(tmp_path, "whole")
    assert whole["global_step"] == 30
    stop = ("--trainer.callbacks+=tests.helpers.faults.SignalOnRank",
            "--trainer.callbacks.rank", "0", "--trainer.callbacks.step", "13",
            "--trainer.callbacks.signal", "SIGINT")  # fmt: skip
    with pytest.raises(SystemExit) as stopped:  # Ctrl-C: stops at the step, as SIGTERM does
        main(_last_not_best(tmp_path, "cut", *stop))
    assert stopped.value.code == 1  # as a Ctrl-C always exited
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["status"] == "interrupted"
    assert _assert_last_is_final(tmp_path, "cut")["global_step"] == 14
    main(_last_not_best(tmp_path, "cut", "--run.auto_resume", "true"))
    resumed = _assert_last_is_final(tmp_path, "cut")
    assert resumed["global_step"] == 30
    assert all(torch.equal(w, resumed["state_dict"][k]) for k, w in whole["state_dict"].items())


def test_last_ckpt_holds_the_last_step_when_max_time_ends_the_run(tmp_path):
    main(_last_not_best(tmp_path, "timed", "--trainer.max_time", "00:00:00:02", steps=100_000))
    assert 0 < _assert_last_is_final(tmp_path, "timed")["global_step"] < 100_000


def test_the_last_ckpt_of_a_run_with_an_ema_keeps_the_raw_weights_apart(tmp_path):
    """last.ckpt is written at the last step, before the EMA puts its average into the model at
    train end: ``current_model_state`` holds the raw weights to continue from."""
    ema = ("--trainer.callbacks+=lightning_dl.training.callbacks.ema.WarmupEMA",
           "--trainer.callbacks.decay", "0.9")  # fmt: skip
    main(_last_not_best(tmp_path, "ema", *ema, steps=20))
    last = read_checkpoint(tmp_path / "ema" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 20
    name = "backbone.net.1.weight"
    assert not torch.equal(last["state_dict"][name], last["current_model_state"][name])
