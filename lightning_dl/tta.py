"""Classifier with horizontal-flip test-time augmentation (airbench's final evaluation).

Averaging the logits of an image and its mirror costs one extra forward pass at test time and
adds a few tenths of a percent on CIFAR-10. Only ``test`` and ``predict`` use it: validation
stays a single pass so checkpoint selection is as cheap as before.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_dl.classifier import Classifier


class FlipTTAClassifier(Classifier):
    """``Classifier`` whose test/predict logits are the mean over the image and its mirror."""

    def __init__(self, *args: Any, tta_flip: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tta_flip = tta_flip

    def _tta_active(self) -> bool:
        trainer = self._trainer  # None when used outside a Trainer (then: plain forward)
        return self.tta_flip and trainer is not None and (trainer.testing or trainer.predicting)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and not self.training and self._tta_active():
            both = super().forward(torch.cat([x, x.flip(-1)]))
            return both.view(2, len(x), -1).mean(0)
        return super().forward(x)
