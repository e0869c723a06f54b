"""Training step time of a frame config's MLP, and the time per epoch it implies.

    python bench/frame_step_time.py [--config configs/librispeech_mlp_large.yaml] [--features 28]
        [--classes 42] [--batch 8192] [--steps 5] [--device cpu|cuda] [--precision 32|bf16]
        [--frames 36.2e6] [--threads 1]

Builds the config's backbone (its ``hidden``, ``activation``, ``norm``, ``dropout``, ``context``)
for ``--features`` cepstra and ``--classes`` phonemes and times plain-PyTorch training steps on
random windows: forward, label-smoothed cross-entropy, backward, fused AdamW step (what the fit
path does, without Lightning's loop: bench/lightning_overhead.py measures that, ~2-3 ms a step).
Two columns: the config's MLP and, as the reference that fixes what the device sustains, one
dense ``(B, 4096) @ (4096, 4096)`` matmul with its backward (3x its forward FLOPs). Reported:
ms per step, frames/s, sustained TFLOP/s (6 x parameters x frames: 2 per multiply-add, x3 for
the backward), and seconds per epoch of ``--frames`` (train-clean-100: ~100.6 h at 100 frames/s
= ~36.2 M) at the measured rate. Random inputs: the time does not depend on the values.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, steps: int, device: torch.device) -> float:
    """Median seconds of ``step()`` over ``steps`` calls, after two warm-up calls."""
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "librispeech_mlp_large.yaml")
    p.add_argument("--features", type=int, default=28)
    p.add_argument("--classes", type=int, default=42)
    p.add_argument("--batch", type=int, default=8192)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=["32", "bf16"], default="32")
    p.add_argument("--frames", type=float, default=36.2e6)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from lightning_dl.models.mlp import MLP

    device = torch.device(args.device)
    config = yaml.safe_load(args.config.read_text())
    k = config["data"]["init_args"]["context"]
    smoothing = config["model"]["init_args"].get("label_smoothing", 0.0)
    backbone = config["model"]["init_args"]["backbone"]["init_args"]
    model = MLP((2 * k + 1, args.features), args.classes, **backbone).to(device)
    params = sum(p.numel() for p in model.parameters())
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused)
    x = torch.randn(args.batch, 2 * k + 1, args.features, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=args.precision == "bf16")

    def mlp_step() -> None:
        with autocast:
            loss = F.cross_entropy(model(x), y, label_smoothing=smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    width = 4096
    a = torch.randn(args.batch, width, device=device, requires_grad=True)
    w = torch.randn(width, width, device=device, requires_grad=True)

    def matmul_step() -> None:
        with autocast:
            out = a @ w
        out.backward(torch.ones_like(out))

    rows = [
        (f"config MLP ({params / 1e6:.1f} M params)", timed(mlp_step, args.steps, device),
         6 * params * args.batch),
        (f"reference: ({args.batch}, {width}) @ ({width}, {width}) + backward",
         timed(matmul_step, args.steps, device), 6 * width * width * args.batch),
    ]  # fmt: skip
    threads = torch.get_num_threads()
    print(
        f"{args.config.name}, context {k}, {args.features} features, {args.classes} classes, "
        f"batch {args.batch}, {device} ({threads} threads), precision {args.precision}"
    )
    print("| step | ms / step | frames/s | TFLOP/s | s / epoch of", f"{args.frames:.3g} frames |")
    print("| --- | --- | --- | --- | --- |")
    for name, seconds, flops in rows:
        epoch = math.ceil(args.frames / args.batch) * seconds
        print(
            f"| {name} | {seconds * 1e3:.1f} | {args.batch / seconds:,.0f} "
            f"| {flops / seconds / 1e12:.3f} | {epoch:,.0f} |"
        )


if __name__ == "__main__":
    main()
