"""Predictions for every sample exactly once, in dataset order, on one process or under DDP:
Lightning's predict sampler does not pad and records each batch's dataset indices, which every
rank gathers, sorts and checks to cover ``0..N-1`` once, so each holds what one process would."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_in_order(indices: list[list[int]], outputs: list[torch.Tensor]) -> torch.Tensor:
    """Every rank's batches in the order of their indices (each must appear once), sequences of
    unequal widths padded with -1 to the widest."""
    parts = [(indices, outputs)]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (indices, outputs))
    outputs = [batch for _, rank_outputs in parts for batch in rank_outputs]
    if not outputs:
        raise RuntimeError("no predictions on any rank: is the predict dataloader empty?")
    all_indices = torch.cat([torch.as_tensor(b, dtype=torch.long) for r, _ in parts for b in r])
    order = torch.argsort(all_indices, stable=True)
    if not torch.equal(all_indices[order], torch.arange(len(order))):
        counts = torch.bincount(all_indices)
        duplicated = (counts > 1).nonzero().flatten()[:5].tolist()
        missing = (counts == 0).nonzero().flatten()[:5].tolist()
        raise RuntimeError(
            f"predictions do not cover samples 0..{len(order) - 1} once each: "
            f"duplicated {duplicated}, missing {missing} (first five)"
        )
    width = max(o.shape[1] for o in outputs) if outputs[0].dim() == 2 else 0
    padded = [F.pad(o, (0, width - o.shape[1]), value=-1) if width else o for o in outputs]
    return torch.cat(padded)[order]


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
    return gather_in_order(seen or [], outputs)
