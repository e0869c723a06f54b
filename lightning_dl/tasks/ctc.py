"""The LightningModule for utterance-level phoneme recognition with CTC (HW3P2-style tasks).

The backbone (any ``class_path``, called with the feature dimension and phonemes + blank) maps a
padded batch to per-frame scores; the loss is ``ctc_loss`` on fp32 log-probabilities. An
impossible alignment makes it infinite, never zeroed, so the NaN guard stops the run there (the
DataModule refuses such utterances first). Validation decodes greedily and logs the mean
Levenshtein distance (``val/dist``, lower is better: ``monitor``); a few decoded utterances go to
``val_examples.txt`` (and wandb). Prediction decodes greedily or by beam search (``beam_width``).
``clip_grad_norm`` is the module's: Lightning refuses the trainer's with fused optimizers under
bf16-mixed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.text import EditDistance

from data_modules.errors import UserInputError, require_at_least
from lightning_dl.tasks import optim
from lightning_dl.tasks.ctc_decode import beam_decode, greedy_decode, to_text

BackboneFactory = Callable[[int, int], nn.Module]
EXAMPLES_FILE = "val_examples.txt"


def ctc_loss(
    scores: torch.Tensor,
    out_lengths: np.ndarray,
    targets: torch.Tensor,
    target_lengths: np.ndarray,
) -> torch.Tensor:
    """Mean CTC loss of ``(B, T, V)`` scores (class 0 the blank) against phoneme indices.

    Computed in fp32 outside autocast; infinite for an utterance whose labels cannot be
    aligned to its output frames (never zeroed).
    """
    with torch.autocast(scores.device.type, enabled=False):
        log_probs = scores.float().log_softmax(-1).transpose(0, 1)  # (T, B, V)
        return F.ctc_loss(
            log_probs,
            targets + 1,
            torch.from_numpy(np.asarray(out_lengths)),
            torch.from_numpy(np.asarray(target_lengths)),
            blank=0,
            reduction="mean",
            zero_infinity=False,
        )


class CTCRecognizer(optim.ConfiguredOptimizer, pl.LightningModule):
    """Utterances -> phoneme sequences; logs ``{train,val,test}/loss`` and ``{val,test}/dist``."""

    monitor = ("val/dist", "min")  # what the CLI's ModelCheckpoint (and sweeps) optimise
    aligns_with_ctc = True  # setup refuses utterances too short for CTC

    def __init__(
        self,
        backbone: BackboneFactory,
        num_classes: int = 46,
        input_shape: tuple[int, ...] = (40,),
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        fused_optimizer: bool = True,
        beam_width: int = 1,
        examples: int = 3,
        clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__()
        require_at_least(type(self).__name__, 0, examples=examples)
        require_at_least(type(self).__name__, 1, beam_width=beam_width)
        if clip_grad_norm is not None and not clip_grad_norm >= 0:  # NaN too
            raise UserInputError(
                f"{type(self).__name__}: clip_grad_norm={clip_grad_norm}, expected at least 0"
            )
        self.save_hyperparameters(logger=False)
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.backbone = optim.call_factory(
            "backbone", backbone, int(input_shape[-1]), num_classes + 1
        )
        self.val_dist = EditDistance(reduction="mean")
        self.test_dist = EditDistance(reduction="mean")
        self.codes = np.array([chr(0x100 + i) for i in range(num_classes)])  # until setup
        self._examples: list[tuple[str, str]] = []
        self.progress_values: dict[str, float] = {}

    # -- data ----------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Take the phoneme codes from the data; refuse sequences CTC cannot align."""
        datamodule = getattr(self.trainer, "datamodule", None)
        inventory = getattr(datamodule, "inventory", None)
        if inventory is not None and len(inventory.codes) == self.hparams.num_classes:
            self.codes = np.array(inventory.codes)
        checks = getattr(datamodule, "check_ctc_lengths", None)
        output_lengths = getattr(self.backbone, "output_lengths", None)
        if callable(checks) and callable(output_lengths) and self.aligns_with_ctc:
            checks(output_lengths)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, host_lengths: np.ndarray):
        return self.backbone(x, lengths, host_lengths)

    # -- training ------------------------------------------------------------------------------
    def _loss(self, batch: Any, decode: bool = False) -> tuple[torch.Tensor, list | None]:
        """The batch's loss, and its greedy decoding when ``decode``."""
        scores, out_lengths = self(batch.x, batch.lengths, batch.host_lengths)
        loss = ctc_loss(scores, out_lengths, batch.targets, batch.host_target_lengths)
        return loss, greedy_decode(scores, out_lengths) if decode else None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)[0]
        connector = getattr(self.trainer, "_logger_connector", None)
        if getattr(connector, "should_update_logs", True):  # only the steps that are written
            self.log("train/loss", loss.detach(), batch_size=len(batch.host_lengths))
            self.progress_values = {"train/loss": float(loss.detach())}
        return loss

    # -- evaluation ----------------------------------------------------------------------------
    def _evaluate(self, batch: Any, stage: str) -> None:
        loss, guesses = self._loss(batch, decode=True)
        size = len(batch.host_lengths)
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True, batch_size=size)
        predicted = to_text(guesses, self.codes)
        targets = batch.targets.cpu().numpy()
        truth = [t[:n] for t, n in zip(targets, batch.host_target_lengths, strict=True)]
        expected = to_text(truth, self.codes)
        metric = getattr(self, f"{stage}_dist")
        metric.update(predicted, expected)
        self.log(f"{stage}/dist", metric, on_epoch=True, batch_size=size)
        if stage == "val" and len(self._examples) < self.hparams.examples:
            free = self.hparams.examples - len(self._examples)
            self._examples += list(zip(expected[:free], predicted[:free], strict=True))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        examples, self._examples = self._examples, []
        if self.trainer.sanity_checking or not examples or not self.trainer.is_global_zero:
            return
        step = self.trainer.global_step
        lines = [f"step {step}"]
        for target, predicted in examples:
            lines += [f"  true: {target}", f"  pred: {predicted}"]
        root = Path(self.trainer.default_root_dir)
        if root.is_dir():
            with open(root / EXAMPLES_FILE, "a") as f:
                f.write("\n".join(lines) + "\n")
        for logger in self.trainer.loggers:
            if hasattr(logger, "log_text"):  # wandb: one table per validation
                rows = [[step, t, p] for t, p in examples]
                logger.log_text("val/examples", columns=["step", "true", "predicted"], data=rows)

    # -- prediction ----------------------------------------------------------------------------
    def _decode(self, batch: Any) -> tuple[list[np.ndarray], int]:
        """Each utterance's phoneme indices, and the batch's longest possible output."""
        scores, out_lengths = self(batch.x, batch.lengths, batch.host_lengths)
        if self.hparams.beam_width > 1:
            return beam_decode(scores, out_lengths, self.hparams.beam_width), scores.shape[1]
        return greedy_decode(scores, out_lengths), scores.shape[1]

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Phoneme indices of each utterance, padded with -1 to the batch's longest output
        (:func:`~lightning_dl.predict.ordered.gather_in_order` pads batches alike)."""
        sequences, longest = self._decode(batch)
        out = torch.full((len(sequences), longest), -1, dtype=torch.int16)
        for row, seq in zip(out, sequences, strict=True):
            row[: len(seq)] = torch.from_numpy(seq)
        return out

    # -- optimisation --------------------------------------------------------------------------
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.hparams.clip_grad_norm:  # no host read: the scale is applied on the device
            nn.utils.clip_grad_norm_(self.parameters(), self.hparams.clip_grad_norm, foreach=True)
