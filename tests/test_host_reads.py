"""The steady state never waits for the device: no tensor read, no collective on a quiet step.

A quiet step neither logs, validates nor checkpoints. On a GPU each ``.item()`` or collective
there would stall the host until the device catches up; on CPU the same calls are counted.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from pytorch_lightning.loggers import WandbLogger

from lightning_dl.training.cli import LightningDLCLI
from tests.helpers.cuda import needs_cuda
from tests.helpers.host_reads import HostReadsPerStep, counting_tensor_reads
from tests.helpers.tiny_runs import tiny_args

EMA = "--trainer.callbacks+=lightning_dl.training.callbacks.ema.WarmupEMA"


def _count_reads(tmp_path, *extra: str) -> HostReadsPerStep:
    args = tiny_args(
        "--run.dir", str(tmp_path / "run"), "--trainer.max_steps", "40",
        "--trainer.val_check_interval", "25", "--trainer.log_every_n_steps", "10", *extra,
    )  # fmt: skip
    cli = LightningDLCLI(args=args)
    counts: Counter = Counter()
    recorder = HostReadsPerStep(counts)
    cli.trainer.callbacks.insert(0, recorder)
    try:
        with counting_tensor_reads(counts):
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finally:  # the config's offline wandb run: closed, so later runs in this process get theirs
        for logger in cli.trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.finish()
    return recorder


@pytest.mark.parametrize("extra", [(), (EMA,)], ids=["plain", "ema"])
def test_quiet_steps_read_nothing_from_the_device(tmp_path, extra):
    recorder = _count_reads(tmp_path, *extra)
    # 40 steps in epochs of 8: 4 log, 1 validates, 5 end an epoch (one of them the run)
    assert len(recorder.quiet) >= 28, recorder.loud
    reads = {step: dict(recorder.per_step[step]) for step in recorder.quiet}
    assert all(not r for r in reads.values()), {s: r for s, r in reads.items() if r}
    # and the counting works: the logging steps do read (train/loss, train/acc, the flags)
    loud = [recorder.per_step[s] for s in recorder.loud if s in recorder.per_step]
    assert any(sum(c.values()) > 0 for c in loud)


def test_optimizers_without_a_device_skip_keep_the_per_step_check(tmp_path):
    # RMSprop has no fused kernel, so NaN safety needs the loss on the host every step
    recorder = _count_reads(tmp_path, "--model.optimizer", "torch.optim.RMSprop")
    assert all(recorder.per_step[s]["item"] == 1 for s in recorder.quiet)


@needs_cuda
def test_quiet_cuda_steps_never_synchronize(tmp_path):
    """CUDA's own sync detector, armed on quiet steps only, raises on any synchronization."""
    from pytorch_lightning.callbacks import Callback

    class ArmOnQuietSteps(Callback):
        def on_train_batch_start(self, trainer, *args) -> None:
            quiet = not trainer._logger_connector.should_update_logs and trainer.global_step > 2
            torch.cuda.set_sync_debug_mode("error" if quiet else "default")

        def on_train_batch_end(self, trainer, *args) -> None:
            torch.cuda.set_sync_debug_mode("default")

    args = tiny_args(
        "--run.dir", str(tmp_path / "run"), "--trainer.accelerator", "gpu",
        "--trainer.max_steps", "30", "--trainer.val_check_interval", "1000",
        "--trainer.log_every_n_steps", "10",
    )  # fmt: skip
    cli = LightningDLCLI(args=args)
    cli.trainer.callbacks.insert(0, ArmOnQuietSteps())
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finally:
        torch.cuda.set_sync_debug_mode("default")
