"""Normalisation layers with hand-written backward passes (see batchnorm.py, layernorm.py)."""

from lightning_dl.layers.batchnorm import (
    CustomBatchNormAutograd,
    CustomBatchNormManualFunction,
    CustomBatchNormManualModule,
)
from lightning_dl.layers.layernorm import (
    CustomLayerNormAutograd,
    CustomLayerNormManualFunction,
    CustomLayerNormManualModule,
)

__all__ = [
    "CustomBatchNormAutograd",
    "CustomBatchNormManualFunction",
    "CustomBatchNormManualModule",
    "CustomLayerNormAutograd",
    "CustomLayerNormManualFunction",
    "CustomLayerNormManualModule",
]
