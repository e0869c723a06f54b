"""Exact resume: a run killed by SIGKILL and resumed ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import torch

from lightning_dl.fit import main
from lightning_dl.training.callbacks.exact_resume import truncate_metrics_csv
from lightning_dl.training.cli import LightningDLCLI
from lightning_dl.training.run.directory import newest_unfinished_run, wandb_run_id
from tests.helpers.faults import SimulatedKill
from tests.helpers.tiny_runs import BF16, ROOT, run_fit, tiny_args
from tests.helpers.wandb_offline import read_offline_run
from tests.helpers.wsj_corpus import write_run_corpus

# Dropout makes every step consume random numbers; with 8 steps an epoch the checkpoint at step
# 18 falls inside epoch 2 (2 of its 8 batches done), so the resume is mid-epoch; it is not a
# logging step (every 5), so the training accuracy accumulated since step 15 must be restored.
RUN = ("--model.backbone.init_args.dropout", "0.2", "--run.checkpoint_every_n_steps", "6")


def _state(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)  # fit writes no pickled code


EMA = ("--trainer.callbacks+=lightning_dl.training.callbacks.ema.WarmupEMA",
       "--trainer.callbacks.decay", "0.9")  # fmt: skip


def _wsj_args(tmp_path: Path) -> Callable[..., list[str]]:
    """The WSJ frames config on a tiny Kaggle-format corpus: 130 frames, 8 batches of 16 an epoch.

    Its loader shuffles with the memory-saving ChunkedRandomSampler, which exact resume swaps for
    its seeded equivalent.
    """
    corpus = write_run_corpus(tmp_path / "wsj")

    def args(*extra: str) -> list[str]:
        return [
            "--config", str(ROOT / "configs" / "wsj_mlp.yaml"), *corpus,
            "--data.batch_size", "16", "--data.context", "2",
            "--model.backbone.init_args.hidden", "[32, 32]",
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            "--trainer.precision", "32-true",
            "--trainer.max_steps", "30",  # and the config's max_epochs 10: OneCycleLR then
            # builds the loader before the restore (estimated_stepping_batches), see ExactResume
            "--trainer.val_check_interval", "10", "--trainer.check_val_every_n_epoch", "null",
            "--trainer.log_every_n_steps", "5",
            *extra,
        ]  # fmt: skip

    return args


@pytest.mark.parametrize(
    "case",
    ["plain", "ema", "wsj", "sigterm", "after_validation", pytest.param("bf16_ema", marks=BF16)],
)
def test_killed_run_resumes_bit_identical(tmp_path, case):
    """Killed at step 19 (SIGKILL: last.ckpt from step 18; SIGTERM: written at the signal, at
    step 20, a validation step), or at 21 (last.ckpt from the validation at step 20).
    ``bf16_ema``: bf16-mixed with the EMA, bit-identical too (no GradScaler state to restore)."""
    if case == "wsj":
        base = _wsj_args(tmp_path)
    else:
        base = partial(tiny_args, precision="bf16-mixed" if case == "bf16_ema" else "32-true")
    averaging = EMA if case in ("ema", "bf16_ema") else ()
    reference = main(base(*RUN, *averaging, "--run.dir", str(tmp_path / "a")))

    fault = "TermAtStep" if case == "sigterm" else "KillAtStep"
    killed = run_fit(
        base(
            *RUN, *averaging, "--run.root", str(tmp_path / "runs"), "--run.name", "b",
            f"--trainer.callbacks+=tests.helpers.faults.{fault}", "--trainer.callbacks.step",
            "21" if case == "after_validation" else "19",
        )
    )  # fmt: skip
    assert "will not continue the same data order" not in killed.stderr  # the loader was rebuilt
    run_dir = newest_unfinished_run(tmp_path / "runs" / "b")
    assert run_dir is not None
    status = json.loads((run_dir / "summary.json").read_text())["status"]
    last_step = _state(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    if case == "sigterm":  # a non-zero exit as shells report TERM, a checkpoint at the signal
        assert killed.returncode == 143, killed.stderr[-2000:]
        assert (status, last_step) == ("interrupted", 20)
    else:  # SIGKILL: no cleanup at all; the last periodic or validation checkpoint is left
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert (status, last_step) == ("running", 20 if case == "after_validation" else 18)

    # auto_resume finds the killed run by its name, continues it from last.ckpt
    resumed = main(
        base(*RUN, *averaging, "--run.root", str(tmp_path / "runs"), "--run.name", "b",
             "--run.auto_resume", "true")
    )  # fmt: skip
    assert resumed["best_checkpoint"].startswith(str(run_dir))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"

    a, b = (
        _state(tmp_path / "a" / "checkpoints" / "last.ckpt"),
        _state(run_dir / "checkpoints" / "last.ckpt"),
    )
    assert a["global_step"] == b["global_step"] == 30
    for name, weight in a["state_dict"].items():
        assert torch.equal(weight, b["state_dict"][name]), name  # bit-identical weights
    if averaging:  # state_dict holds the averaged weights; the raw ones continue identically too
        assert not torch.equal(a["state_dict"]["backbone.net.1.weight"],
                               a["current_model_state"]["backbone.net.1.weight"])  # fmt: skip
        for name, weight in a["current_model_state"].items():
            assert torch.equal(weight, b["current_model_state"][name]), name
    assert torch.equal(  # and Adam's moments
        a["optimizer_states"][0]["state"][0]["exp_avg_sq"],
        b["optimizer_states"][0]["state"][0]["exp_avg_sq"],
    )
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "best_val/acc", "global_step"):
        assert resumed[key] == reference[key], key  # exact, not approximately
    if case == "bf16_ema":
        assert resumed["precision"] == reference["precision"] == "bf16-mixed"
    # metrics.csv continues the killed run's rows: identical to the uninterrupted run's file
    assert (run_dir / "metrics.csv").read_text() == (tmp_path / "a" / "metrics.csv").read_text()

    # one wandb run, resumed: both offline segments carry the same id, the last has the summary
    segments = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(segments) == 2 and len({s.name.rsplit("-", 1)[1] for s in segments}) == 1
    assert wandb_run_id(run_dir) == segments[0].name.rsplit("-", 1)[1]
    stored = read_offline_run(segments[-1])
    assert stored["summary"]["test/acc"] == pytest.approx(resumed["test/acc"])
    assert stored["summary"]["global_step"] == 30


def _resolved(*args: str) -> LightningDLCLI:
    return LightningDLCLI(args=tiny_args("--trainer.logger", "false", *args))


def _best(run_dir: Path) -> tuple[int, list[torch.Tensor], float]:
    state = _state(run_dir / "checkpoints" / "best.ckpt")
    summary = json.loads((run_dir / "summary.json").read_text())
    return state["global_step"], list(state["state_dict"].values()), summary["test/acc"]


def test_a_run_killed_at_any_point_of_a_validation_tests_the_same_best_checkpoint(tmp_path):
    """Kill points that decide which best.ckpt survives: during the best validation (a periodic
    last.ckpt of that step, written before it, made the resumed run skip it), and between
    ModelCheckpoint's best.ckpt and last.ckpt. Killed (simulated: the run stops dead at that
    hook) and resumed, the run tests the same best.ckpt as an uninterrupted one."""
    args = tiny_args("--trainer.logger", "false", "--trainer.precision", "32-true",
                     "--data.num_train", "256", "--data.noise", "3.0",
                     "--trainer.val_check_interval", "3", "--run.checkpoint_every_n_steps", "3",
                     steps=9)  # fmt: skip
    main([*args, "--run.dir", str(tmp_path / "whole")])
    step, weights, test_acc = _best(tmp_path / "whole")
    kills = {
        "during": {
            "class_path": "tests.helpers.faults.KillDuringValidation", "init_args": {"step": step}
        },
        "between": {"class_path": "tests.helpers.faults.KillAfterWrite",
                    "init_args": {"name": "best.ckpt", "step": step}},
    }  # fmt: skip
    for name, kill in kills.items():
        run = ["--run.dir", str(tmp_path / name)]
        with pytest.raises(SimulatedKill):
            main([*args, *run, f"--trainer.callbacks+={json.dumps(kill)}"])
        main([*args, *run, "--run.auto_resume", "true"])
        resumed_step, resumed_weights, resumed_acc = _best(tmp_path / name)
        assert (resumed_step, resumed_acc) == (step, test_acc), name
        assert all(torch.equal(a, b) for a, b in zip(resumed_weights, weights, strict=True))


def test_ckpt_path_last_and_auto_resume_resolution(tmp_path):
    run_dir = tmp_path / "r"
    with pytest.raises(FileNotFoundError, match="no checkpoints/last.ckpt"):
        _resolved("--run.dir", str(run_dir), "--ckpt_path", "last")
    fresh = _resolved("--run.dir", str(run_dir), "--run.auto_resume", "true")
    assert fresh.config.ckpt_path is None  # nothing to resume: a new run in that directory

    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"not read here")
    with pytest.raises(ValueError, match="already holds a run"):
        _resolved("--run.dir", str(run_dir))
    last = str(run_dir / "checkpoints" / "last.ckpt")
    assert _resolved("--run.dir", str(run_dir), "--ckpt_path", "last").config.ckpt_path == last
    assert (
        _resolved("--run.dir", str(run_dir), "--run.auto_resume", "true").config.ckpt_path == last
    )

    (run_dir / "summary.json").write_text('{"status": "completed"}')
    with pytest.raises(ValueError, match="finished run"):
        _resolved("--run.dir", str(run_dir), "--run.auto_resume", "true")


def test_newest_unfinished_run_skips_finished_and_checkpointless(tmp_path):
    def make(name: str, status: str | None, ckpt: bool, mtime: int) -> Path:
        d = tmp_path / name
        (d / "checkpoints").mkdir(parents=True)
        if ckpt:
            (d / "checkpoints" / "last.ckpt").write_bytes(b"x")
            os.utime(d / "checkpoints" / "last.ckpt", (mtime, mtime))
        if status:
            (d / "summary.json").write_text(json.dumps({"status": status}))
        return d

    make("1-done", "completed", True, 300)
    (tmp_path / "latest").symlink_to("1-done")  # fit's runs/<name>/latest link is no candidate
    make("2-empty", "running", False, 0)
    older = make("3-failed", "failed", True, 100)
    newer = make("4-killed", "running", True, 200)
    assert newest_unfinished_run(tmp_path) == newer
    (newer / "summary.json").write_text('{"status": "completed"}')
    assert newest_unfinished_run(tmp_path) == older
    assert newest_unfinished_run(tmp_path / "missing") is None


def test_truncate_metrics_keeps_rows_before_the_checkpoint_and_drops_cut_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss\r\n0,4,1.5\r\n0,9,1.2\r\n1,14,1.0\r\n1,1")
    assert truncate_metrics_csv(str(path), 10) == ["epoch", "step", "train/loss"]
    assert path.read_bytes() == b"epoch,step,train/loss\r\n0,4,1.5\r\n0,9,1.2\r\n"
    path.write_text("epoch,step,train/loss\r\n0,4,1.5\r\n1,1")  # killed mid-row
    truncate_metrics_csv(str(path), 100)
    assert path.read_bytes() == b"epoch,step,train/loss\r\n0,4,1.5\r\n"


def test_killed_right_after_a_checkpoint_resumes_with_the_same_metrics_csv(tmp_path):
    """Killed right after the periodic last.ckpt of a logging step (15), before Lightning logs
    that step's training row: the checkpoint carries the row, and the resumed run writes it. The
    resumed run's console has none of the notices a resume used to print; its wall time is the
    whole run's."""
    args = tiny_args("--trainer.logger", "[]", "--run.checkpoint_every_n_steps", "5", steps=20)
    main([*args, "--run.dir", str(tmp_path / "whole")])
    kill = {"class_path": "tests.helpers.faults.KillAfterWrite",
            "init_args": {"name": "last.ckpt", "step": 15}}  # fmt: skip
    run = ["--run.dir", str(tmp_path / "cut")]
    with pytest.raises(SimulatedKill):
        main([*args, *run, f"--trainer.callbacks+={json.dumps(kill)}"])
    carried = _state(tmp_path / "cut" / "checkpoints" / "last.ckpt")["callbacks"]["RunClock"]
    resumed = run_fit([*args, *run, "--run.auto_resume", "true"])
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    assert "Restored all states" in output
    assert "weights_only" not in output and "exists and is not empty" not in output, output
    whole = (tmp_path / "whole" / "metrics.csv").read_text()
    assert (tmp_path / "cut" / "metrics.csv").read_text() == whole
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    segment = summary["segment_wall_time_s"]
    assert summary["wall_time_s"] == pytest.approx(carried["wall_time_s"] + segment, abs=0.02)
