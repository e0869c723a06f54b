"""The one LightningModule: any backbone, cross-entropy, torchmetrics accuracy, optimizer, schedule.

The backbone, the optimizer and the learning-rate schedule arrive as factories (each a
``class_path`` with its options, LightningCLI's dependency injection); the module calls the
backbone with ``input_shape`` and ``num_classes``, which the CLI links from the DataModule, and
:mod:`lightning_dl.tasks.optim` turns the other two into what ``configure_optimizers`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from data_modules.errors import UserInputError
from lightning_dl.tasks import optim

BackboneFactory = Callable[[tuple[int, ...], int], nn.Module]
TRAIN_WINDOW = "lightning_dl_train_acc_window"  # checkpoint key of the unlogged train predictions
FOLD_EVERY = 64  # steps of predictions kept before they are folded into the metric state


class Classifier(optim.ConfiguredOptimizer, pl.LightningModule):
    """Image or frame classifier; logs ``{train,val,test}/{loss,acc}``."""

    def __init__(
        self,
        backbone: BackboneFactory,
        num_classes: int = 10,
        input_shape: tuple[int, ...] = (1, 28, 28),
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
        flip_tta: bool = False,
        fused_optimizer: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise UserInputError(f"Classifier: label_smoothing={label_smoothing}, expected 0..1")
        # logger=False: the CLI logs the whole resolved config once; no duplicate hparams.
        self.save_hyperparameters(logger=False)
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.backbone = optim.call_factory("backbone", backbone, tuple(input_shape), num_classes)
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        if compile:
            self.backbone.compile()
        # Inputs come from our own model and data, so per-step argument validation is skipped.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # (predicted class, target) of each training batch since train_acc was last updated:
        # one argmax per step instead of a torchmetrics update (~40 us of Python) per step.
        self._train_window: list[tuple[torch.Tensor, torch.Tensor]] = []
        # The training metrics of the last logging step as host floats, for progress bars.
        self.progress_values: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for evaluation; with ``flip_tta`` the mean over the image and its mirror."""
        logits = self(x)
        if self.hparams.flip_tta and x.dim() == 4:
            logits = (logits + self(x.flip(-1))) / 2
        return logits

    def _should_log_now(self) -> bool:
        """True on the steps where Lightning writes logs (every ``log_every_n_steps``)."""
        connector = getattr(self.trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        self._train_window.append((logits.detach().argmax(dim=-1), y))
        # Logging costs Python time per call, so it happens only on the steps that are written.
        # train/acc is the accuracy over all batches since the previous logged step.
        if self._should_log_now():
            self._fold_train_window()
            accuracy = self.train_acc.compute()
            # Not prog_bar=True: Lightning would read every progress-bar tensor back to the host
            # after every batch, logged that step or not. The bar shows progress_values instead,
            # read here, on the logging steps only, in one transfer.
            self.log("train/loss", loss.detach())
            self.log("train/acc", accuracy)
            self.train_acc.reset()
            values = torch.stack([loss.detach().float(), accuracy.float()]).tolist()
            self.progress_values = dict(zip(("train/loss", "train/acc"), values, strict=True))
        elif len(self._train_window) >= FOLD_EVERY:
            self._fold_train_window()
        return loss

    def _fold_train_window(self) -> None:
        """Move the buffered training predictions into the torchmetrics state, in one update."""
        if self._train_window:
            device = self.train_acc.device
            preds, targets = zip(*self._train_window, strict=True)
            self.train_acc.update(torch.cat(preds).to(device), torch.cat(targets).to(device))
            self._train_window.clear()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the training predictions not yet logged: a resumed run logs the same train/acc."""
        super().on_save_checkpoint(checkpoint)
        if self._train_window:
            checkpoint[TRAIN_WINDOW] = [(p.cpu(), t.cpu()) for p, t in self._train_window]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._train_window = list(checkpoint.get(TRAIN_WINDOW, []))  # moved when folded

    def _evaluation_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        logits = self.evaluate(x)
        accuracy = getattr(self, f"{stage}_acc")
        accuracy.update(logits, y)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), on_epoch=True, sync_dist=True)
        self.log(f"{stage}/acc", accuracy, on_epoch=True)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self.evaluate(x).argmax(dim=-1)
