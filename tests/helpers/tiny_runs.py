"""Command lines for tiny training runs on the SYNTHETIC quickstart data (tests only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The bf16 leg: tests that run bf16-mixed autocast on any host (emulated, and slower, on CPUs
# without native bf16), so that what changes under autocast is tested where CI runs.
BF16 = pytest.mark.bf16
QUICK = str(ROOT / "configs" / "synthetic_mlp.yaml")
HIDDEN = "model.backbone.init_args.hidden"  # the MLP's hidden sizes, as sweeps name them


def tiny_args(*extra: str, steps: int = 30, precision: str = "32-true") -> list[str]:
    """512 training samples in batches of 64 (8 steps an epoch), CPU, no progress bar.

    The precision is pinned (fp32 unless asked): what ``auto`` resolves to depends on the host,
    and a test about anything else must not. The bf16 leg asks for ``bf16-mixed`` explicitly.
    """
    return [
        "--config", QUICK, "--trainer.precision", precision,
        "--data.num_train", "512", "--data.num_val", "128", "--data.num_test", "128",
        "--data.batch_size", "64",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.max_steps", str(steps), "--trainer.val_check_interval", "10",
        "--trainer.log_every_n_steps", "5",
        *extra,
    ]  # fmt: skip


def run_fit(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m lightning_dl.fit ARGS`` in a fresh process (DDP needs its own argv)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    for inherited in ("LIGHTNING_DL_RUN_DIR", "LIGHTNING_DL_CKPT_PATH", "WANDB_SERVICE"):
        env.pop(inherited, None)  # a fresh process: its own run dir and its own wandb service
    return subprocess.run(
        [sys.executable, "-m", "lightning_dl.fit", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )
