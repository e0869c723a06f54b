"""``trainer.precision: auto``: the fastest safe precision for the hardware the run meets.

bf16 autocast pays only where the hardware computes bf16 natively (CUDA Ampere and later, CPUs
with AMX or AVX512-BF16); emulated, it is slower than fp32 (about 10x for the ConvNet's step on an
AVX2 EPYC: ``bench/vision_throughput.py``). So ``auto`` is ``bf16-mixed`` there, else ``32-true``;
``16-mixed`` (loss scaling, skipped steps) is left to an explicit choice.
``LIGHTNING_DL_AUTO_PRECISION=32-true`` (or ``bf16-mixed``) makes ``auto`` resolve as on a host of
the other kind: to reproduce another machine's result, or to test as that host would.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from lightning_fabric.connector import _PRECISION_INPUT

from data_modules.errors import UserInputError

AUTO = "auto"
BF16, FP32 = "bf16-mixed", "32-true"
FORCE_ENV = "LIGHTNING_DL_AUTO_PRECISION"
_NATIVE_BF16_FLAGS = {"amx_bf16", "avx512_bf16"}  # x86 (/proc/cpuinfo "flags")
_ARM_BF16_FEATURE = "bf16"  # aarch64 (/proc/cpuinfo "Features"): BFDOT, BFMMLA


@lru_cache(maxsize=1)
def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bf16 natively (AMX, AVX512-BF16, or Arm's BF16 extension)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False  # not Linux: no way to tell without private torch API, so assume not
    for key, _, value in (line.partition(":") for line in text.splitlines()):
        words = set(value.split())
        if key.strip() == "flags" and words & _NATIVE_BF16_FLAGS:
            return True
        if key.strip() == "Features" and _ARM_BF16_FEATURE in words:
            return True
    return False


def _device_type(accelerator: Any) -> str:
    name = str(accelerator or "auto").lower()
    if name in ("gpu", "cuda") or (name == "auto" and torch.cuda.is_available()):
        return "cuda"
    if name == "mps" or (name == "auto" and torch.backends.mps.is_available()):
        return "mps"
    return "cpu" if name in ("cpu", "auto") else name


def resolve_precision(precision: Any, accelerator: Any = "auto") -> Any:
    """``precision`` unchanged, or for ``"auto"`` the fastest safe one on ``accelerator``."""
    if precision != AUTO:
        return precision
    if forced := os.environ.get(FORCE_ENV):
        if forced not in (BF16, FP32):
            raise UserInputError(f"{FORCE_ENV}={forced!r}: expected {FP32!r} or {BF16!r}")
        return forced
    device = _device_type(accelerator)
    if device == "cuda" and torch.cuda.is_available():
        return BF16 if torch.cuda.is_bf16_supported(including_emulation=False) else FP32
    if device == "cpu" and platform.machine().lower() in ("x86_64", "amd64", "aarch64", "arm64"):
        return BF16 if cpu_has_native_bf16() else FP32
    return FP32


class Trainer(pl.Trainer):
    """Lightning's Trainer, whose ``precision`` may also be ``"auto"`` (module docstring)."""

    def __init__(
        self, *, precision: _PRECISION_INPUT | Literal["auto"] | None = None, **kwargs: Any
    ) -> None:
        accelerator = kwargs.get("accelerator", "auto")
        super().__init__(precision=resolve_precision(precision, accelerator), **kwargs)


PRECISION_KEY = "lightning_dl_precision"  # checkpoint key: the precision the run trained at


def checkpoint_precision(checkpoint: dict[str, Any]) -> str:
    """The precision a checkpoint was trained at (fp32 for checkpoints that predate the record)."""
    return str(checkpoint.get(PRECISION_KEY, FP32))


class RecordPrecision(pl.Callback):
    """Writes the run's precision into its checkpoints, so that ``kaggle/predict.py`` evaluates a
    bf16-trained model under the same autocast as fit's test did, and gives the same labels."""

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[PRECISION_KEY] = str(trainer.precision)
