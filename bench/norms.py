"""Forward+backward time of the custom norms against the native PyTorch ops (CPU by default).

    PYTHONPATH=$PWD python bench/norms.py [--threads 1] [--repeats 30] [--device cpu]

For each size and each norm it times one training step's worth of work, y = norm(x) and the
gradients of x, gamma, beta for a fixed upstream gradient, and prints the median time of the native
op and each custom variant's ratio to it. Goal from issue 3: manual Function <= 1.2x native.
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

SIZES = [(256, 256), (1024, 1024), (4096, 512), (512, 4096), (8192, 256)]
EPS = 1e-5


def time_step(fn: Callable, x, params, dy, repeats: int, device: str) -> float:
    """Median seconds of forward + backward (grads of x and params) after warm-up."""

    def step():
        y = fn(x)
        torch.autograd.grad(y, (x, *params), dy)

    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    print(f"device={args.device} threads={torch.get_num_threads()} float32, median of "
          f"{args.repeats}; ratio = time / native (Function vs F.*, modules vs nn.*)")
    header = (f"{'norm':<10}{'N x D':>12}{'native ms':>11}{'Function':>10}{'native mod ms':>15}"
              f"{'manual mod':>12}{'autograd mod':>14}")
    print(header)
    print("-" * len(header))
    worst = 0.0
    for kind in ("batchnorm", "layernorm"):
        for n, d in SIZES:
            x = torch.randn(n, d, device=args.device).requires_grad_()
            dy = torch.randn(n, d, device=args.device)
            t = {name: time_step(fn, x, params, dy, args.repeats, args.device)
                 for name, (fn, params) in variants(kind, d, args.device).items()}
            ratio_fn = t["function"] / t["native_fn"]
            worst = max(worst, ratio_fn)
            print(f"{kind:<10}{f'{n}x{d}':>12}{t['native_fn'] * 1e3:>11.3f}{ratio_fn:>9.2f}x"
                  f"{t['native_mod'] * 1e3:>15.3f}{t['manual_mod'] / t['native_mod']:>11.2f}x"
                  f"{t['autograd_mod'] / t['native_mod']:>13.2f}x")
    print(f"worst manual Function / native: {worst:.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
