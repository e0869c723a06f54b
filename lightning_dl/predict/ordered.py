"""Predictions for every sample exactly once, in dataset order, on one process or under DDP.

Under DDP ``trainer.predict`` returns this rank's share only. Lightning's predict sampler does not
pad and records each batch's dataset indices: every rank's are gathered, sorted and checked to
cover ``0..N-1`` once, so each rank holds what one process would, bit for bit.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenated along the batch; sequences of unequal widths padded with -1 to the widest."""
    width = max(p.shape[1] for p in parts) if parts[0].dim() == 2 else 0
    return torch.cat([F.pad(p, (0, width - p.shape[1]), value=-1) if width else p for p in parts])


def gather_in_order(indices: list[torch.Tensor], outputs: list[torch.Tensor]) -> torch.Tensor:
    """Every rank's outputs, sorted by their indices; each index must appear once."""
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
    return _cat([p[1] for p in present])[order]


def predict_in_order(trainer: pl.Trainer, model: pl.LightningModule, **kwargs: Any) -> torch.Tensor:
    """``trainer.predict(model, **kwargs)`` gathered from all ranks: row ``i`` is sample ``i``'s
    prediction, on every rank (write files from ``trainer.is_global_zero`` only)."""
    outputs = trainer.predict(model, return_predictions=True, **kwargs)
    sampler = getattr(trainer.predict_dataloaders, "batch_sampler", None)
    seen = getattr(sampler, "seen_batch_indices", None)  # Lightning's record of each batch
    for batch_idx, prediction in enumerate(outputs):
        if not isinstance(prediction, torch.Tensor):
            raise TypeError(
                f"predict_step returned {type(prediction).__name__} for batch {batch_idx}; "
                "predict_in_order needs one tensor with the batch as its first dimension"
            )
        if not seen:
            raise RuntimeError(
                "Lightning recorded no dataset indices for predict batch "
                f"{batch_idx}: the predict dataloader must be a torch DataLoader"
            )
        if len(seen[batch_idx]) != len(prediction):
            raise ValueError(
                f"predict batch {batch_idx}: {len(prediction)} predictions for "
                f"{len(seen[batch_idx])} samples"
            )
    # the process group is still up here, even though predict has returned
    return gather_in_order([torch.as_tensor(i, dtype=torch.long) for i in seen or []], outputs)
