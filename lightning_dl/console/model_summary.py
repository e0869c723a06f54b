"""The model summary in one line."""

from __future__ import annotations

import logging
from typing import Any

from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.utilities.model_summary import get_human_readable_count


class CompactModelSummary(ModelSummary):
    """The model summary in one line: parameters (trainable), size and the layers that hold them."""

    @staticmethod
    def summarize(
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
            + f", {model_size:.1f} MB"
            + (f": {', '.join(layers)}" if layers else "")
        )
        logging.getLogger("pytorch_lightning.callbacks.model_summary").info(line)
