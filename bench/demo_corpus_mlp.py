"""Sanity classifier on the demo corpus in plain PyTorch (not the project's fit path).

A 2x1024 MLP on frames with +-k frames of context (zero-padded at utterance edges), trained for
a fixed number of epochs; prints dev frame accuracy for each k next to the majority-class rate.
Checks the corpus is learnable, that context matters, and that it is far from trivial.

    PYTHONPATH=. python bench/demo_corpus_mlp.py /tmp/demo2000 --k 0 5 --epochs 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

NUM_CLASSES = 138


def load(directory: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames (N, 40), labels (N,), and each frame's utterance [start, end) as (N, 2)."""
    # The generator's own output: trusted, so plain pickle loading is fine here.
    frames = np.load(directory / f"{split}.npy", allow_pickle=True)
    labels = np.load(directory / f"{split}_labels.npy", allow_pickle=True)
    lengths = np.array([len(y) for y in labels])
    ends = np.cumsum(lengths)
    bounds = np.repeat(np.stack([ends - lengths, ends], axis=1), lengths, axis=0)
    return (
        torch.from_numpy(np.concatenate(list(frames))),
        torch.from_numpy(np.concatenate(list(labels)).astype(np.int64)),
        torch.from_numpy(bounds),
    )


def windows(x: torch.Tensor, bounds: torch.Tensor, idx: torch.Tensor, k: int) -> torch.Tensor:
    """(B, (2k+1)*40) context windows of frames `idx`, zeros outside their utterance."""
    pos = idx[:, None] + torch.arange(-k, k + 1)
    inside = (pos >= bounds[idx, :1]) & (pos < bounds[idx, 1:])
    return (x[pos.clamp(0, len(x) - 1)] * inside[..., None]).flatten(1)


def mlp(inputs: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(inputs, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, NUM_CLASSES),
    )  # fmt: skip


@torch.no_grad()
def accuracy(model, x, y, bounds, k, batch=8192) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(y), batch):
        idx = torch.arange(start, min(start + batch, len(y)))
        correct += (model(windows(x, bounds, idx, k)).argmax(1) == y[idx]).sum().item()
    return correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--k", type=int, nargs="+", default=[0, 5])
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y, bounds = load(args.directory, "train")
    dx, dy, dbounds = load(args.directory, "dev")
    mean, std = x.mean(0), x.std(0)
    x, dx = (x - mean) / std, (dx - mean) / std
    majority = torch.bincount(y, minlength=NUM_CLASSES).argmax()
    print(
        f"train {len(y)} frames, dev {len(dy)} frames; "
        f"majority-class dev accuracy {(dy == majority).float().mean():.1%}"
    )
    print(f"{'k':>3} {'input':>6} {'epochs':>6} {'train s':>8} {'dev acc':>8}")
    for k in args.k:
        torch.manual_seed(0)
        model = mlp((2 * k + 1) * 40)
        steps = int(args.epochs * len(y) / args.batch)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
        per_epoch = len(y) // args.batch
        start = time.perf_counter()
        for step in range(steps):
            if step % per_epoch == 0:
                order = torch.randperm(len(y))
            idx = order[(step % per_epoch) * args.batch : (step % per_epoch + 1) * args.batch]
            model.train()
            loss = nn.functional.cross_entropy(model(windows(x, bounds, idx, k)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        seconds = time.perf_counter() - start
        acc = accuracy(model, dx, dy, dbounds, k)
        print(f"{k:>3} {(2 * k + 1) * 40:>6} {args.epochs:>6} {seconds:>8.0f} {acc:>8.1%}")


if __name__ == "__main__":
    main()
