"""Memory of one epoch's training order: our ResumableSampler against torch's DistributedSampler.

    python bench/sampler_memory.py [--frames 15000000]

The Kaggle WSJ train set has about 15 M frames, each a sample. torch's DistributedSampler (and
RandomSampler) turn the epoch's permutation into a Python list, about 36 bytes an index; our
ResumableSampler keeps it as one int32 tensor and hands it out in chunks. Each sampler runs in a
fresh process; the table shows how much the peak RSS grows when its first index is drawn.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_growth_mib(which: str, n: int) -> float:
    """Peak RSS growth, in MiB, of drawing the first index of an epoch, in this process."""
    sys.path.insert(0, str(ROOT))
    from torch.utils.data import DistributedSampler

    from data_modules.batches.samplers import ResumableSampler

    cls = {"torch": DistributedSampler, "ours": ResumableSampler}[which]
    sampler = cls(range(n), num_replicas=1, rank=0, shuffle=True, seed=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    next(iter(sampler))
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=15_000_000)
    parser.add_argument("--child", choices=["torch", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(peak_growth_mib(args.child, args.frames))
        return
    growth = {
        which: float(
            subprocess.run(
                [sys.executable, __file__, "--child", which, "--frames", str(args.frames)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for which in ("torch", "ours")
    }
    print(f"\nOne epoch's order of {args.frames:,} samples (peak RSS growth, fresh process each)")
    print(f"| {'sampler':<42} | {'MiB':>7} | {'bytes/index':>11} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 13}|")
    names = {
        "torch": "torch DistributedSampler (Python list)",
        "ours": "lightning_dl ResumableSampler (int32)",
    }
    for which, mib in growth.items():
        print(f"| {names[which]:<42} | {mib:7.0f} | {mib * 2**20 / args.frames:11.1f} |")
    print(f"ratio torch / ours: {growth['torch'] / growth['ours']:.1f}x")


if __name__ == "__main__":
    main()
