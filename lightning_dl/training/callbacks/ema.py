"""EMA of the weights whose decay warms up, ``min(decay, 1 - (1 + t)^-power)`` (timm's
``ModelEmaV3``): Lightning's ``EMAWeightAveraging`` keeps the random initial weights for long.
Integer buffers are copied; the update never reads a device tensor back.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging
from torch.optim.swa_utils import AveragedModel

MultiAvgFn = Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]


def warmup_ema(decay: float, power: float) -> MultiAvgFn:
    """``multi_avg_fn`` for ``AveragedModel``: ``avg += max((1+t)^-power, 1-decay) * (x - avg)``."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], t: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():  # one call per dtype: these are counters
            torch._foreach_copy_(averaged, current)
            return
        weight = (1 + t.to(averaged[0].dtype)).pow(-power).clamp(min=1 - decay)
        torch._foreach_lerp_(averaged, current, [weight] * len(averaged))

    return update


class _SyncFreeAveragedModel(AveragedModel):
    """``AveragedModel`` whose update never tests its device-side count (twice a step in torch's):
    the warm-up's first weight is 1, so the first update is the copy torch makes it."""

    def update_parameters(self, model: torch.nn.Module) -> None:
        buffers = self.use_buffers
        mine = itertools.chain(self.module.parameters(), self.module.buffers() if buffers else ())
        theirs = itertools.chain(model.parameters(), model.buffers() if buffers else ())
        groups: dict[Any, tuple[list, list]] = defaultdict(lambda: ([], []))
        for averaged, current in zip(mine, theirs, strict=True):
            group = groups[(averaged.device, averaged.dtype)]
            group[0].append(averaged.detach())
            group[1].append(current.detach().to(averaged.device))
        for averaged, current in groups.values():
            self.multi_avg_fn(averaged, current, self.n_averaged.to(averaged[0].device))
        if not buffers:  # buffers follow the model
            for mine_b, theirs_b in zip(self.module.buffers(), model.buffers(), strict=True):
                mine_b.detach().copy_(theirs_b.detach().to(mine_b.device))
        self.n_averaged += 1


class WarmupEMA(WeightAveraging):
    """EMA of the weights (and float buffers) with the decay warm-up above; updated every step."""

    def __init__(
        self,
        decay: float = 0.999,
        power: float = 0.75,
        use_buffers: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"WarmupEMA decay must be in [0, 1), got {decay}")
        if power <= 0:
            raise ValueError(f"WarmupEMA power must be > 0, got {power}")
        super().__init__(
            device=device, use_buffers=use_buffers, multi_avg_fn=warmup_ema(decay, power)
        )
        self.decay, self.power = decay, power

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self._average_model is not None:  # the same module, updated without device reads
            self._average_model.__class__ = _SyncFreeAveragedModel
