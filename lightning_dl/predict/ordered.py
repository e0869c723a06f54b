"""Predictions for every sample exactly once, in dataset order, on one process or under DDP.

``trainer.predict`` under DDP returns only this rank's share, and a padded
``DistributedSampler`` would duplicate samples. Lightning's predict-time sampler does not pad
and records each batch's dataset indices; every rank's (indices, predictions) are gathered,
sorted by index and checked to cover ``0..N-1`` once, so every rank holds the same tensor, bit
for bit, as one process would (write files from ``trainer.is_global_zero`` only).
"""

from __future__ import annotations

import sys
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pytorch_lightning.callbacks import BasePredictionWriter

from lightning_dl.training.precision import checkpoint_precision, resolve_precision


class _IndexedCollector(BasePredictionWriter):
    """Keeps (dataset indices, predictions) of every predict batch on this rank, on the CPU."""

    def __init__(self) -> None:
        super().__init__(write_interval="batch")
        self.indices: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def write_on_batch_end(self, *args: Any) -> None:
        _, _, prediction, batch_indices, _, batch_idx, _ = args  # Lightning's argument order
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


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenated along the batch; sequences of unequal widths padded with -1 to the widest."""
    width = max(p.shape[1] for p in parts) if parts[0].dim() == 2 else 0
    return torch.cat([F.pad(p, (0, width - p.shape[1]), value=-1) if width else p for p in parts])


def gather_in_order(
    indices: list[torch.Tensor], outputs: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather every rank's (indices, outputs), sort by index; check each index appears once."""
    local = (torch.cat(indices), _cat(outputs)) if indices else None
    parts = [local]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, local)
    present = [p for p in parts if p is not None]
    if not present:
        raise RuntimeError("no predictions on any rank: is the predict dataloader empty?")
    all_indices = torch.cat([p[0] for p in present])
    order = torch.argsort(all_indices, stable=True)
    if not torch.equal(all_indices[order], torch.arange(len(order))):
        counts = torch.bincount(all_indices)
        duplicated = (counts > 1).nonzero().flatten()[:5].tolist()
        missing = (counts == 0).nonzero().flatten()[:5].tolist()
        raise RuntimeError(
            f"predictions do not cover samples 0..{len(order) - 1} once each: "
            f"duplicated {duplicated}, missing {missing} (first five)"
        )
    return all_indices[order], _cat([p[1] for p in present])[order]


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
            model, dataloaders, datamodule=datamodule, ckpt_path=ckpt_path, return_predictions=False
        )
        # the process group is still up here, even though predict has returned
        return gather_in_order(collector.indices, collector.outputs)[1]
    finally:
        trainer.callbacks.remove(collector)


def prediction_trainer(
    checkpoint: dict[str, Any], accelerator: str, devices: int, precision: str | None
) -> pl.Trainer:
    """``devices`` processes (DDP above one), nothing logged or checkpointed, a bar only on a
    terminal, at the precision the checkpoint trained at unless ``precision`` says otherwise,
    so the labels are those fit's test saw."""
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
