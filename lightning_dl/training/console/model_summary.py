"""The model summary in one line, with the size the parameters really take."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.utilities.model_summary import get_human_readable_count

# Lightning sizes parameters from the trainer's precision, knows no mixed precision, and warns on
# every bf16-mixed run (so on every GPU run). We size them from their own dtypes instead, which is
# right under any precision: mixed precision keeps fp32 parameters, "bf16-true" bf16 ones.
_PRECISION_NOTICE = r"Precision .* is not supported by the model summary"


def parameter_megabytes(module: Any) -> float:
    """The bytes of ``module``'s parameters, in MB (1e6 bytes), from each tensor's own dtype."""
    return sum(p.numel() * p.element_size() for p in module.parameters()) / 1e6


class CompactModelSummary(ModelSummary):
    """The model summary in one line: parameters (trainable), size and the layers that hold them."""

    def _summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _PRECISION_NOTICE, UserWarning)
            summary = super()._summary(trainer, pl_module)
        self._megabytes = parameter_megabytes(pl_module)
        return summary

    def summarize(  # type: ignore[override]  # Lightning's is a staticmethod; we need self
        self,
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        columns = dict(summary_data)
        layers = [
            f"{name} {kind} {params.strip()}"
            for name, kind, params in zip(
                columns["Name"], columns["Type"], columns["Params"], strict=True
            )
            if params.strip() != "0"
        ]
        frozen = total_parameters - trainable_parameters
        line = (
            f"model: {get_human_readable_count(total_parameters).strip()} parameters"
            + (f" ({get_human_readable_count(frozen).strip()} frozen)" if frozen else "")
            + f", {getattr(self, '_megabytes', model_size):.1f} MB"
            + (f": {', '.join(layers)}" if layers else "")
        )
        logging.getLogger("pytorch_lightning.callbacks.model_summary").info(line)
