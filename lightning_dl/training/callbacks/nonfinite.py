"""Never update the weights from a non-finite loss or gradient, and stop the run that made one.

Fused optimizers without a GradScaler get a device flag as ``found_inf`` each step, so the kernel
skips that update without a host read; the flags are read in one transfer on logging steps, before
each validation and checkpoint and at the end. Other optimizers, or fp16 (its GradScaler owns
``found_inf``), read the loss before backward each step. No checkpoint follows a non-finite step.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

from data_modules.errors import ReportedError

_FLAGS = 64  # flag slots preallocated on the device; more are added when a check is far apart


def _gradient_sum(grads: list[torch.Tensor]) -> torch.Tensor | float:
    """NaN or inf when any gradient is: on CUDA the largest |gradient| (one fused kernel), on CPU
    the sum (that norm runs tensor by tensor there: 3 ms a step, not 0.25)."""
    if not grads:
        return 0.0
    if grads[0].is_cuda:
        return torch.nn.utils.get_total_norm(grads, norm_type=math.inf, foreach=True)
    return torch.stack([g.sum(dtype=torch.float32) for g in grads]).sum()


class NonFiniteLossError(ReportedError, FloatingPointError):
    """The training loss or a gradient was NaN or infinite; the message names the step."""


class NonFiniteLossGuard(Callback):
    """Skip and then stop at the first non-finite training step; see the module docstring."""

    def __init__(self) -> None:
        self.batch_idx = -1
        self._loss: torch.Tensor | None = None
        self._flags: torch.Tensor | None = None  # one float per step since the last check
        self._steps: list[tuple[int, int, int]] = []  # (global step, epoch, batch) of each flag
        self._on_device: bool | None = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.batch_idx = batch_idx

    def _where(self, trainer: pl.Trainer, step: tuple[int, int, int] | None = None) -> str:
        here = (trainer.global_step, trainer.current_epoch, self.batch_idx)
        global_step, epoch, batch = step or here
        return f"global step {global_step} (epoch {epoch}, batch index {batch})"

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        self._loss = loss.detach()
        if self._on_device is None:  # can every optimizer skip a step from ``found_inf``?
            fused = all(g.get("fused") for o in trainer.optimizers for g in o.param_groups)
            amp = all(getattr(o, "_step_supports_amp_scaling", False) for o in trainer.optimizers)
            scaler = getattr(trainer.precision_plugin, "scaler", None)
            self._on_device = fused and amp and scaler is None
        if self._on_device:
            return
        loss = self._loss
        # one scalar read (~1 us; two tensor ops and a read: ~11 us a step on CPU)
        local = math.isfinite(loss.item()) if loss.numel() == 1 else bool(loss.isfinite().all())
        if trainer.world_size == 1 and local:
            return
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(local, all=True):
            return
        what = (
            f"non-finite training loss {loss.float().mean().item()} on rank {trainer.global_rank}"
            if not local
            else "non-finite training loss on another rank"
        )
        self._stop(
            trainer,
            f"{what} at {self._where(trainer)}; stopped before the optimizer step, so the "
            "checkpoints on disk are from earlier, finite steps",
        )

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self._on_device or self._loss is None:
            return
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        total = self._loss.float().sum() + _gradient_sum(grads)
        found = (~total.isfinite()).float()
        optimizer.found_inf = found  # read by the fused kernel: no update when it is 1
        slot = len(self._steps)
        if self._flags is None or slot >= len(self._flags):
            grown = torch.zeros(max(_FLAGS, 2 * slot), device=found.device)
            if self._flags is not None:
                grown[:slot] = self._flags
            self._flags = grown
        self._flags[slot].copy_(found)
        self._steps.append((trainer.global_step, trainer.current_epoch, self.batch_idx))

    def _check(self, trainer: pl.Trainer) -> None:
        """Read the flags of the steps since the last check (one transfer); stop if any is set."""
        if not self._steps or self._flags is None:
            return
        flags = self._flags[: len(self._steps)].tolist()
        steps, self._steps = self._steps, []
        bad = [step for step, flag in zip(steps, flags, strict=True) if flag]
        if not bad:
            return
        more = f" and {len(bad) - 1} more step(s) up to global step {bad[-1][0]}" if bad[1:] else ""
        self._stop(
            trainer,
            f"non-finite training loss or gradient at {self._where(trainer, bad[0])}{more}; "
            "those optimizer updates were skipped and no checkpoint was written after them",
        )

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer._logger_connector.should_update_logs:  # a step that reads the device anyway
            self._check(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._check(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # raising here writes nothing
            self._check(trainer)

    def _stop(self, trainer: pl.Trainer, message: str) -> None:
        self._steps = []
        if getattr(trainer, "checkpoint_callback", None) is not None:
            message += (
                "; to continue, resume from the last checkpoint with a lower learning rate "
                "(--ckpt_path last --model.optimizer.lr ...)"
            )
        raise NonFiniteLossError(message)
