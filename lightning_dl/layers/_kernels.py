"""The fused CPU loops of csrc/norms.cpp, compiled on first use; None where they cannot be.

The torch-op formulas make 5-7 passes over memory a step where PyTorch's norms make 2-3 (1.5-2.3x
native time on CPU, bench/norms.py); as loops they run at about native speed. They are built for
the instruction set PyTorch reports (a C++ compiler and ninja, ~30 s once, cached), so a cache
shared between machines cannot hand one a binary it cannot run. Without a compiler, with
``LIGHTNING_DL_NORM_KERNELS=0`` and for GPU tensors, the torch-op versions run.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

SOURCE = Path(__file__).parent / "csrc" / "norms.cpp"
# PyTorch's own CPU dispatch levels -> compiler flags for the same instruction set
_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}


@functools.cache
def norm_kernels() -> ModuleType | None:
    """The compiled extension, or None (with one warning saying why) if it cannot be built."""
    if os.environ.get("LIGHTNING_DL_NORM_KERNELS", "1") == "0":
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    try:
        from torch.utils.cpp_extension import load

        return load(
            name=f"lightning_dl_norms_{capability.lower()}",
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-fopenmp-simd", *_FLAGS.get(capability, [])],
            verbose=False,
        )
    except Exception as error:  # no compiler or ninja, or a failed build: fall back
        warnings.warn(
            f"custom norms: could not build the CPU kernels of {SOURCE} ({error}); using the "
            "torch-op versions (slower; set LIGHTNING_DL_NORM_KERNELS=0 to skip the build)",
            stacklevel=2,
        )
        return None


def use_kernels(x: torch.Tensor, gamma: torch.Tensor) -> ModuleType | None:
    """The extension if this call can use it: 2-D contiguous CPU float32/float64 input."""
    if (
        x.device.type != "cpu"
        or x.dim() != 2
        or x.dtype not in (torch.float32, torch.float64)
        or gamma.dtype != x.dtype
    ):
        return None
    return norm_kernels()


def kernel_forward(
    ctx: Any, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, per_row: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, mean, 1/std), per row (LayerNorm) or per column (BatchNorm), from the kernels; saves
    what ``kernel_grads`` will need."""
    x, gamma = x.contiguous(), gamma.contiguous()
    y, mean, inv_std = ctx.kernels.norm_forward(x, gamma, beta.contiguous(), eps, per_row)
    ctx.per_row = per_row
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:  # beta's gradient needs nothing
        ctx.save_for_backward(x, mean, inv_std, gamma)
    return y, mean, inv_std


def kernel_grads(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """(dx, dgamma, dbeta) from the kernels, None where the input needs no gradient."""
    need_x, need_gamma, need_beta = ctx.needs_input_grad[:3]
    if not (need_x or need_gamma):  # only beta: kernel_forward saved nothing
        return None, None, dy.sum(0)
    dx, dgamma, dbeta = ctx.kernels.norm_backward(dy.contiguous(), *ctx.saved_tensors, ctx.per_row)
    return dx if need_x else None, dgamma if need_gamma else None, dbeta if need_beta else None
