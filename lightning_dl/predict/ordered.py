"""Predictions for every sample exactly once, in dataset order, on one process or under DDP.

``trainer.predict`` under DDP returns only this rank's share of the predictions, and any padded
``DistributedSampler`` would duplicate samples. Here Lightning's own predict-time sampler (no
padding: ``UnrepeatedDistributedSamplerWrapper``) and its record of each batch's dataset indices
are used; every rank's (indices, predictions) are gathered, sorted by index and checked to
cover ``0..N-1`` exactly once. The result is the same tensor, bit for bit, as a single-process
run, on every rank (write files from ``trainer.is_global_zero`` only)::

    predictions = predict_in_order(trainer, model, datamodule=dm, ckpt_path=ckpt)
    if trainer.is_global_zero:
        write_csv(predictions)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import BasePredictionWriter

from lightning_dl.training.precision import checkpoint_precision, resolve_precision


class _IndexedCollector(BasePredictionWriter):
    """Keeps (dataset indices, predictions) of every predict batch on this rank, on the CPU."""

    def __init__(self) -> None:
        super().__init__(write_interval="batch")
        self.indices: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if not isinstance(prediction, torch.Tensor):
            raise TypeError(
                f"predict_step returned {type(prediction).__name__} for batch {batch_idx}; "
                "predict_in_order needs one tensor with the batch as its first dimension"
            )
        if not batch_indices:
            raise RuntimeError(
                "Lightning recorded no dataset indices for predict batch "
                f"{batch_idx}: the predict dataloader must be a torch DataLoader"
            )
        if len(batch_indices) != len(prediction):
            raise ValueError(
                f"predict batch {batch_idx}: {len(prediction)} predictions for "
                f"{len(batch_indices)} samples"
            )
        self.indices.append(torch.as_tensor(batch_indices, dtype=torch.long))
        self.outputs.append(prediction.detach().cpu())


def gather_in_order(
    indices: list[torch.Tensor], outputs: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather every rank's (indices, outputs), sort by index; check each index appears once."""
    local = (torch.cat(indices), torch.cat(outputs)) if indices else None
    parts = [local]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, local)
    present = [p for p in parts if p is not None]
    if not present:
        raise RuntimeError("no predictions on any rank: is the predict dataloader empty?")
    all_indices = torch.cat([p[0] for p in present])
    all_outputs = torch.cat([p[1] for p in present])
    order = torch.argsort(all_indices, stable=True)
    sorted_indices = all_indices[order]
    expected = torch.arange(len(sorted_indices))
    if not torch.equal(sorted_indices, expected):
        counts = torch.bincount(all_indices)
        duplicated = (counts > 1).nonzero().flatten()[:5].tolist()
        missing = (counts == 0).nonzero().flatten()[:5].tolist()
        raise RuntimeError(
            f"predictions do not cover samples 0..{len(sorted_indices) - 1} once each: "
            f"duplicated {duplicated}, missing {missing} (first five)"
        )
    return sorted_indices, all_outputs[order]


def predict_in_order(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    *,
    datamodule: pl.LightningDataModule | None = None,
    dataloaders: Any = None,
    ckpt_path: str | None = None,
) -> torch.Tensor:
    """``trainer.predict`` gathered from all ranks: row ``i`` is the prediction for sample ``i``."""
    collector = _IndexedCollector()
    trainer.callbacks.append(collector)
    try:
        trainer.predict(
            model,
            dataloaders=dataloaders,
            datamodule=datamodule,
            ckpt_path=ckpt_path,
            return_predictions=False,
        )
        # the process group is still up here, even though predict has returned
        _, outputs = gather_in_order(collector.indices, collector.outputs)
    finally:
        trainer.callbacks.remove(collector)
    return outputs


def prediction_trainer(
    checkpoint: dict[str, Any], accelerator: str, devices: int, precision: str | None
) -> pl.Trainer:
    """The Trainer a submission predicts with: ``devices`` processes (DDP above one), nothing
    logged or checkpointed, a bar only on a terminal, and the precision the checkpoint trained
    at unless ``precision`` says otherwise, so the labels are those fit's test saw."""
    return pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=sys.stdout.isatty(),  # a log file gets no redrawn bar
        precision=resolve_precision(precision or checkpoint_precision(checkpoint), accelerator),
    )
