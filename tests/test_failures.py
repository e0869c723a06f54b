"""Failure handling: divergence stops before the bad step; a crash mid-write keeps last.ckpt."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

from lightning_dl.fit import main
from lightning_dl.training.callbacks.nonfinite import NonFiniteLossError, NonFiniteLossGuard
from tests.helpers.tiny_runs import BF16, ROOT, tiny_args

# Plain SGD with lr 1e4 and no normalisation blows the weights up within a few steps.
DIVERGING = (
    "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "1e4",
    "--model.lr_scheduler", "null",
    "--model.backbone.init_args.norm", "none", "--run.checkpoint_every_n_steps", "1",
    "--trainer.logger", "false",
)  # fmt: skip


def _diverge(run_dir, *extra: str) -> tuple[str, dict]:
    with pytest.raises(NonFiniteLossError) as caught:
        main(tiny_args(*DIVERGING, "--run.dir", str(run_dir), *extra))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"] == f"NonFiniteLossError: {caught.value}"
    return str(caught.value), summary


def _first_bad_step(message: str) -> int:
    found = re.search(r"at global step (\d+) \(epoch (\d+), batch index (\d+)\)", message)
    assert found, message
    step, epoch, batch = map(int, found.groups())
    assert (epoch, batch) == (step // 8, step % 8)  # 8 batches an epoch
    return step


@pytest.mark.parametrize("precision", ["32-true", pytest.param("bf16-mixed", marks=BF16)])
def test_diverging_run_skips_the_bad_steps_and_stops_at_the_next_check(tmp_path, precision):
    # fused SGD skips a non-finite step on the device; the flags are read every 5 steps. Under
    # bf16-mixed there is no GradScaler (bf16 has fp32's range): the guard alone must do this.
    message, summary = _diverge(tmp_path / "run", "--trainer.precision", precision)
    bad = _first_bad_step(message)
    assert 0 < bad < summary["global_step"] <= bad + 5 < 30  # the first check after it
    assert "updates were skipped and no checkpoint was written after them" in message
    assert "--ckpt_path last --model.optimizer.lr" in message  # what to do next
    # checkpoints (one every step here) stop at the first bad step: all finite
    ckpt = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == bad and ckpt["lightning_dl_precision"] == precision
    assert all(torch.isfinite(w).all() for w in ckpt["state_dict"].values())


def test_optimizers_without_a_device_skip_stop_before_the_bad_step(tmp_path):
    message, summary = _diverge(
        tmp_path / "run", "--model.optimizer", "torch.optim.RMSprop",
        "--trainer.callbacks+=tests.helpers.faults.NanInputOnRank", "--trainer.callbacks.rank", "0",
        "--trainer.callbacks.step", "6",
    )  # fmt: skip
    assert _first_bad_step(message) == summary["global_step"] == 6
    assert "stopped before the optimizer step" in message
    ckpt = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6
    assert all(torch.isfinite(w).all() for w in ckpt["state_dict"].values())


def test_readme_recovery_resume_with_a_lower_lr_keeps_the_optimizer_state(tmp_path, caplog):
    """After a NaN stop, `--ckpt_path last --model.optimizer.lr <lower>` trains on from the last
    checkpoint with the new learning rate and the checkpoint's momentum."""
    run_dir = tmp_path / "run"
    sgd = (
        "--model.optimizer", "torch.optim.SGD", "--model.optimizer.momentum", "0.9",
        "--model.lr_scheduler", "null", "--run.dir", str(run_dir), "--trainer.logger", "false",
    )  # fmt: skip
    with pytest.raises(NonFiniteLossError, match="at global step 13 "):
        main(tiny_args(
            *sgd, "--model.optimizer.lr", "0.5",
            "--trainer.callbacks+=tests.helpers.faults.NanInputOnRank",
            "--trainer.callbacks.rank", "0", "--trainer.callbacks.step", "13",
        ))  # fmt: skip
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 10  # the validation before the NaN; nothing written after
    assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == 0.5
    with caplog.at_level("INFO"):
        summary = main(tiny_args(*sgd, "--model.optimizer.lr", "0.05", "--ckpt_path", "last"))
    assert summary["status"] == "completed" and summary["global_step"] == 30
    assert "lr 0.5 -> 0.05 (group 0)" in caplog.text  # said, not silent
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    group = last["optimizer_states"][0]["param_groups"][0]
    assert group["lr"] == 0.05 and group["momentum"] == 0.9


def test_new_settings_after_a_resume_keep_state_and_schedule_shape():
    from lightning_dl.tasks.optim import apply_new_settings, settings

    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    saved = settings(optimizer)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    weight.grad = torch.ones(3)
    for _ in range(3):
        optimizer.step()
        schedule.step()
    momentum = optimizer.state[weight]["momentum_buffer"].clone()
    lr_now = optimizer.param_groups[0]["lr"]
    configured = {**saved, "groups": [{**saved["groups"][0], "lr": 0.01, "momentum": 0.5}]}
    changes = apply_new_settings(optimizer, [schedule], saved, configured)
    assert changes == ["lr 0.1 -> 0.01 (group 0)", "momentum 0.9 -> 0.5 (group 0)"]
    group = optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(lr_now / 10) and group["max_lr"] == pytest.approx(0.01)
    assert group["momentum"] == 0.5
    assert torch.equal(optimizer.state[weight]["momentum_buffer"], momentum)  # state kept
    assert apply_new_settings(optimizer, [schedule], configured, configured) == []


@pytest.mark.parametrize("precision", ["32-true", pytest.param("bf16-mixed", marks=BF16)])
def test_a_nan_step_leaves_weights_and_optimizer_state_as_they_were(tmp_path, precision):
    """The deferred check's promise: the update from a non-finite step never happens."""
    from data_modules.synthetic import SyntheticClustersDataModule
    from lightning_dl.models.mlp import MLP
    from lightning_dl.tasks.classifier import Classifier
    from tests.helpers.faults import NanInputOnRank

    class Snapshots(pl.Callback):
        def __init__(self) -> None:
            self.states: dict[int, dict] = {}

        def on_train_batch_start(self, trainer, pl_module, *args) -> None:
            if trainer.global_step in (3, 4):
                optimizer = trainer.optimizers[0]
                self.states[trainer.global_step] = {
                    "weights": {k: v.clone() for k, v in pl_module.state_dict().items()},
                    "adam": {
                        k: v.clone()
                        for k, v in optimizer.state[optimizer.param_groups[0]["params"][0]].items()
                    },
                }

    torch.manual_seed(0)
    model = Classifier(lambda s, n: MLP(s, n, hidden=[16]), 4, (8,))
    snapshots = Snapshots()
    trainer = pl.Trainer(
        max_steps=30, log_every_n_steps=10, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[NonFiniteLossGuard(), NanInputOnRank(rank=0, step=3), snapshots],
        precision=precision,
    )  # fmt: skip
    data = SyntheticClustersDataModule(
        num_train=256, num_val=64, num_test=64, num_features=8, num_classes=4, batch_size=32
    )
    with pytest.raises(NonFiniteLossError, match=r"at global step 3 \(epoch 0, batch index 3\)"):
        trainer.fit(model, datamodule=data)
    assert trainer.global_step == 10  # stopped at the first logging step after the NaN
    before, after = snapshots.states[3], snapshots.states[4]
    for key, value in before["weights"].items():
        if key.endswith("num_batches_tracked") or "running_" in key:
            continue  # BatchNorm statistics move in the forward pass, not the update
        assert torch.equal(value, after["weights"][key]), key
    for key, value in before["adam"].items():
        assert torch.equal(value, after["adam"][key]), key  # moments and step count kept


_CRASH_WHILE_WRITING = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from lightning_dl.training.run.checkpoint_io import AtomicCheckpointIO

    path = sys.argv[1]
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)

    real_save = torch.save
    def save_half_then_die(obj, f, *args, **kwargs):
        f.write(b"PK\\x03\\x04 half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    torch.save = save_half_then_die
    io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    """
)


def test_crash_mid_write_leaves_previous_last_ckpt_intact(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    done = subprocess.run(
        [sys.executable, "-c", _CRASH_WHILE_WRITING, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr  # it really died inside the second write
    kept = torch.load(path, weights_only=True)
    assert kept["step"] == 1 and torch.equal(kept["w"], torch.ones(1000))
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.ckpt.")  # the dead temp file


def test_fit_writes_checkpoints_through_the_atomic_io(tmp_path):
    from lightning_dl.training.cli import LightningDLCLI
    from lightning_dl.training.run.checkpoint_io import AtomicCheckpointIO

    cli = LightningDLCLI(
        args=tiny_args("--run.dir", str(tmp_path / "r"), "--trainer.logger", "false")
    )
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_leftover_temp_file_is_not_taken_for_a_checkpoint(tmp_path):
    """A killed writer's ``.last.ckpt.*.tmp`` is never resumed from."""
    from lightning_dl.training.run.directory import last_checkpoint

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".last.ckpt.abc123.tmp").write_bytes(b"partial")
    assert last_checkpoint(tmp_path) is None


@pytest.mark.parametrize(
    "loss, finite",
    [
        (torch.tensor(2.5), True),
        (torch.tensor(float("nan")), False),
        (torch.tensor(float("-inf"), dtype=torch.bfloat16), False),
        (torch.tensor([1.0, 2.0]), True),  # a non-scalar loss (manual_backward) is checked whole
        (torch.tensor([1.0, float("inf")]), False),
    ],
)
def test_nonfinite_guard_checks_scalar_and_vector_losses(loss, finite):
    trainer = SimpleNamespace(
        world_size=1, global_step=7, current_epoch=1, global_rank=0, callbacks=[]
    )
    guard = NonFiniteLossGuard()
    guard._on_device = False  # the per-step check (optimizers without a fused kernel)
    if finite:
        guard.on_before_backward(trainer, None, loss)
    else:
        with pytest.raises(NonFiniteLossError, match="global step 7"):
            guard.on_before_backward(trainer, None, loss)
