"""Forward+backward time of the custom norms against the native PyTorch ops (CPU by default).

    PYTHONPATH=$PWD python bench/norms.py [--threads 1] [--repeats 30] [--device cpu]
    LIGHTNING_DL_NORM_KERNELS=0 PYTHONPATH=$PWD python bench/norms.py   # the torch-op formulas

For each size and each norm it times one training step's worth of work, y = norm(x) and the
gradients of x, gamma, beta for a fixed upstream gradient, and prints the median time of the native
op and the median over repeats of each custom variant's time ratio to it.
Goal: the manual Function within 1.2x native. On CPU the Functions run the fused loops of
lightning_dl/layers/csrc/norms.cpp when they build (the header line says which path ran).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dl.layers import (
    CustomBatchNormAutograd,
    CustomBatchNormManualFunction,
    CustomBatchNormManualModule,
    CustomLayerNormAutograd,
    CustomLayerNormManualFunction,
    CustomLayerNormManualModule,
)
from lightning_dl.layers._kernels import norm_kernels

SIZES = [(256, 256), (1024, 1024), (4096, 512), (512, 4096), (8192, 256)]
EPS = 1e-5


def time_steps(fns: dict[str, tuple[Callable, tuple]], x, dy, repeats: int, device: str):
    """Per-variant lists of forward+backward seconds, variants interleaved within each repeat.

    Interleaving means a burst of load from other processes hits every variant of a repeat
    alike, so per-repeat ratios stay meaningful on a shared machine.
    """

    def step(fn, params):
        y = fn(x)
        torch.autograd.grad(y, (x, *params), dy)

    for fn, params in fns.values():
        for _ in range(3):
            step(fn, params)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (fn, params) in fns.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(fn, params)
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(times: dict[str, list[float]], name: str, reference: str) -> float:
    return statistics.median(a / b for a, b in zip(times[name], times[reference], strict=True))


def variants(kind: str, d: int, device: str) -> dict[str, tuple[Callable, tuple]]:
    """name -> (callable on x, the learnable parameters it uses)."""
    g = torch.ones(d, device=device, requires_grad=True)
    b = torch.zeros(d, device=device, requires_grad=True)
    if kind == "batchnorm":
        modules = [nn.BatchNorm1d(d), CustomBatchNormManualModule(d), CustomBatchNormAutograd(d)]

        def native_fn(x):
            return F.batch_norm(x, None, None, g, b, training=True, eps=EPS)

        def manual_fn(x):
            return CustomBatchNormManualFunction.apply(x, g, b, EPS)

    else:
        modules = [nn.LayerNorm(d), CustomLayerNormManualModule(d), CustomLayerNormAutograd(d)]

        def native_fn(x):
            return F.layer_norm(x, (d,), g, b, eps=EPS)

        def manual_fn(x):
            return CustomLayerNormManualFunction.apply(x, g, b, EPS)

    native, manual, auto = (m.to(device) for m in modules)
    return {
        "native_fn": (native_fn, (g, b)),
        "function": (manual_fn, (g, b)),
        "native_mod": (native, tuple(native.parameters())),
        "manual_mod": (manual, tuple(manual.parameters())),
        "autograd_mod": (auto, tuple(auto.parameters())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = "torch ops"
    if args.device == "cpu" and norm_kernels() is not None:
        path = "fused C++ loops (lightning_dl/layers/csrc/norms.cpp)"
    print(f"manual Function path: {path}")
    print(
        f"device={args.device} threads={torch.get_num_threads()} float32, median of "
        f"{args.repeats}; ratio = median of per-repeat time / native "
        "(Function vs F.*, modules vs nn.*)"
    )
    header = (
        f"{'norm':<10}{'N x D':>12}{'native ms':>11}{'Function':>10}{'native mod ms':>15}"
        f"{'manual mod':>12}{'autograd mod':>14}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for kind in ("batchnorm", "layernorm"):
        for n, d in SIZES:
            x = torch.randn(n, d, device=args.device).requires_grad_()
            dy = torch.randn(n, d, device=args.device)
            times = time_steps(variants(kind, d, args.device), x, dy, args.repeats, args.device)
            ratio_fn = median_ratio(times, "function", "native_fn")
            worst = max(worst, ratio_fn)
            print(
                f"{kind:<10}{f'{n}x{d}':>12}"
                f"{statistics.median(times['native_fn']) * 1e3:>11.3f}{ratio_fn:>9.2f}x"
                f"{statistics.median(times['native_mod']) * 1e3:>15.3f}"
                f"{median_ratio(times, 'manual_mod', 'native_mod'):>11.2f}x"
                f"{median_ratio(times, 'autograd_mod', 'native_mod'):>13.2f}x"
            )
    print(f"worst manual Function / native: {worst:.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
