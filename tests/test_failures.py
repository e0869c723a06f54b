"""Failure handling: divergence stops before the bad step; a crash mid-write keeps last.ckpt."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch

from lightning_dl.callbacks.nonfinite import NonFiniteLossError, NonFiniteLossGuard
from lightning_dl.fit import main
from tests.tiny_runs import ROOT, tiny_args

# Plain SGD with lr 1e4 and no normalisation blows the weights up within a few steps.
DIVERGING = (
    "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "1e4",
    "--model.lr_scheduler", "null",
    "--model.backbone.init_args.norm", "none", "--run.checkpoint_every_n_steps", "1",
    "--trainer.logger", "false",
)  # fmt: skip


def test_diverging_run_stops_at_once_and_says_where(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as caught:
        main(tiny_args(*DIVERGING, "--run.dir", str(run_dir)))
    message = str(caught.value)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"] == f"NonFiniteLossError: {message}"
    step = summary["global_step"]
    assert 0 < step < 30  # stopped at once, not after max_steps
    # batch index = step within the 8-batch epoch; both named in the error
    assert f"global step {step} (epoch {step // 8}, batch index {step % 8})" in message
    # last.ckpt is the last finite state: every step before the failing one, finite weights
    ckpt = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == step
    assert all(torch.isfinite(w).all() for w in ckpt["state_dict"].values())


_CRASH_WHILE_WRITING = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from lightning_dl.checkpoint_io import AtomicCheckpointIO

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
    from lightning_dl.checkpoint_io import AtomicCheckpointIO
    from lightning_dl.cli import LightningDLCLI

    cli = LightningDLCLI(
        args=tiny_args("--run.dir", str(tmp_path / "r"), "--trainer.logger", "false")
    )
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_leftover_temp_file_is_not_taken_for_a_checkpoint(tmp_path):
    """A killed writer's ``.last.ckpt.*.tmp`` is never resumed from."""
    from lightning_dl.resume import last_checkpoint

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
    trainer = SimpleNamespace(world_size=1, global_step=7, current_epoch=1, global_rank=0)
    guard = NonFiniteLossGuard()
    if finite:
        guard.on_before_backward(trainer, None, loss)
    else:
        with pytest.raises(NonFiniteLossError, match="global step 7"):
            guard.on_before_backward(trainer, None, loss)
