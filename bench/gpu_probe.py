"""A callback that measures a fit on a GPU: samples/s, GPU busy %, host syncs per quiet step.

    --trainer.callbacks+=bench.gpu_probe.GpuProbe --trainer.callbacks.out probe.json

Three windows of training steps after ``warmup``:

1. ``window`` steps timed between two synchronisations: samples/s in steady state;
2. ``window`` steps under torch.profiler (CUDA activity only): the GPU busy fraction, the union
   of kernel intervals over the window's wall time (a lower bound: the profiler slows the host);
3. over both windows, ``torch.cuda.set_sync_debug_mode("warn")`` on the quiet steps (no logging)
   counts every synchronisation the host made there.

Also the seconds from ``on_train_start`` to ``on_train_end`` (synchronised). On CPU the same
numbers come out (busy: None), so the script can be dry-run without a GPU.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


def union_us(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of ``(start, end)`` intervals."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


class GpuProbe(Callback):
    """See the module docstring; results are written as JSON to ``out`` at the end of training."""

    def __init__(self, out: str, warmup: int = 20, window: int = 50) -> None:
        self.out, self.warmup, self.window = Path(out), warmup, window
        self.cuda = torch.cuda.is_available()
        self.result: dict[str, Any] = {}
        self._samples = 0
        self._start = self._window_start = 0.0
        self._profiler: Any = None
        self._caught: Any = None
        self._records: list = []
        self._quiet_steps = 0
        self._syncs = 0

    def _sync(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._sync()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step - self.warmup
        if step == 0:
            self._window_start = self._sync()
        elif step == self.window:
            elapsed = self._sync() - self._window_start
            self.result["samples_per_s"] = self._samples / elapsed
            self.result["step_ms"] = 1000 * elapsed / self.window
            if self.cuda:
                self._profiler = torch.profiler.profile(
                    activities=[torch.profiler.ProfilerActivity.CUDA]
                )
                self._profiler.__enter__()
                self._window_start = time.perf_counter()
        if 0 <= step < self.window:
            first = batch[0] if isinstance(batch, list | tuple) else batch
            self._samples += int(first.shape[0])
        quiet = not trainer._logger_connector.should_update_logs
        if 0 <= step < 2 * self.window and quiet:
            self._quiet_steps += 1
            self._caught = warnings.catch_warnings(record=True)
            self._records = self._caught.__enter__()
            warnings.simplefilter("always")
            if self.cuda:
                torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._caught is not None:
            if self.cuda:
                torch.cuda.set_sync_debug_mode("default")
            self._syncs += sum("synchroniz" in str(r.message) for r in self._records)
            self._caught.__exit__(None, None, None)
            self._caught = None
        if trainer.global_step - self.warmup == 2 * self.window and self._profiler is not None:
            self._finish_profile()

    def _finish_profile(self) -> None:
        torch.cuda.synchronize()
        wall_us = (time.perf_counter() - self._window_start) * 1e6
        self._profiler.__exit__(None, None, None)
        kernels = [
            (e.time_range.start, e.time_range.end)
            for e in self._profiler.events()
            if e.device_type == torch.autograd.DeviceType.CUDA
        ]
        self.result["gpu_busy"] = union_us(kernels) / wall_us if wall_us else None
        self._profiler = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._profiler is not None:
            self._finish_profile()
        self.result.setdefault("gpu_busy", None)
        self.result["train_s"] = self._sync() - self._start
        self.result["quiet_steps"] = self._quiet_steps
        self.result["syncs_per_quiet_step"] = (
            self._syncs / self._quiet_steps if self._quiet_steps and self.cuda else None
        )
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.result, indent=1))
