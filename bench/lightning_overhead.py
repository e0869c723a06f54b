"""Steps/s of our fit path against a plain PyTorch loop: same MLP, data, batch size, steps.

    python bench/lightning_overhead.py [--data-dir DIR_WITH_cifar-10-batches-py] [--steps 300]
                                       [--block 20] [--rounds 3] [--threads N]

Both sides train configs/cifar10_mlp.yaml's MLP (400-300-250-200-150-100 + BatchNorm, Adam 1e-3,
cosine learning-rate decay stepped every step, batch 200) on CIFAR-10-shaped uint8 data held in
memory, normalised per batch. Both use the fused Adam kernel (the Classifier's default) and gather
a batch with one row-wise index_select (as BatchedTensorDataset does); plain loops with PyTorch's
default unfused Adam and with an element-wise ``x[idx]`` gather are timed too, for scale.

The fit path is built by LightningDLCLI from that config exactly as ``python -m lightning_dl.fit``
builds it (CSV logging, train accuracy, checkpoint callback, exact resume), with validation
turned off so that only training steps are timed. A bare LightningModule (plain DataLoader, no
logger, checkpointing or callbacks of ours) shows what Lightning's own loop costs.

Measurements are paired: while a Lightning run trains, a callback runs each plain loop for
``--block`` steps after every ``--block`` Lightning steps, and the Lightning clock stops meanwhile.
Both sides thus share the same seconds of a shared, noisy host; a ratio is taken per run and the
median over ``--rounds`` is reported. Goal: fit path / bare LightningModule >= 0.97 (what our
features cost on top of Lightning's own loop: at most 3%), each side paired with its plain loop.

Every side runs the same ``--precision`` (default fp32; ``bf16-mixed`` puts each plain loop under
bf16 autocast and gives both Lightning sides that precision), and the table says which.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from torch.utils.data import DataLoader  # noqa: E402

from data_modules.batches.augment import normalize  # noqa: E402
from data_modules.batches.batched import BatchedTensorDataset, passthrough_collate  # noqa: E402
from data_modules.images.cifar10 import CIFAR10DataModule, load_cifar10  # noqa: E402
from lightning_dl.models.mlp import MLP  # noqa: E402
from lightning_dl.training.cli import LightningDLCLI  # noqa: E402
from tests.helpers.datafiles import write_cifar10  # noqa: E402

CONFIG = ROOT / "configs" / "cifar10_mlp.yaml"
HIDDEN = [400, 300, 250, 200, 150, 100]
BATCH = 200
MEAN, STD = torch.tensor(CIFAR10DataModule.mean), torch.tensor(CIFAR10DataModule.std)


class PlainLoop:
    """The reference: a hand-written training loop, advanced ``steps`` at a time."""

    def __init__(
        self,
        data: tuple[torch.Tensor, torch.Tensor],
        hidden: list[int],
        total_steps: int,
        fused: bool = True,
        row_gather: bool = True,
        bf16: bool = False,
    ) -> None:
        self.x, self.y, self.bf16 = *data, bf16
        self.model = MLP((3, 32, 32), 10, hidden=hidden, norm="batchnorm").train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=fused or None)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=total_steps)
        self.row_gather, self.order, self.step = row_gather, torch.randperm(len(self.x)), 0

    def run(self, steps: int) -> float:
        """Train ``steps`` steps; return the seconds they took."""
        start = time.perf_counter()
        with torch.enable_grad():
            for _ in range(steps):
                i = (self.step * BATCH) % (len(self.x) - BATCH)
                idx = self.order[i : i + BATCH]
                if self.row_gather:
                    xb, yb = torch.index_select(self.x, 0, idx), torch.index_select(self.y, 0, idx)
                else:
                    xb, yb = self.x[idx], self.y[idx]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    loss = F.cross_entropy(self.model(normalize(xb, MEAN, STD)), yb)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self.schedule.step()
                self.step += 1
        return time.perf_counter() - start


class Interleave(pl.Callback):
    """Times a Lightning run's steps; every ``block`` of them, runs each plain loop ``block`` steps.

    The Lightning clock runs from one ``on_train_batch_end`` to the next, so it holds the whole
    step (fetch, hooks, optimizer) but not the plain blocks run in between.
    """

    def __init__(self, warmup: int, block: int, plain: dict[str, PlainLoop]) -> None:
        self.warmup, self.block, self.plain = warmup, block, plain
        self.seconds = dict.fromkeys(["lightning", *plain], 0.0)
        self.steps = dict.fromkeys(["lightning", *plain], 0)
        self.mark = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for loop in self.plain.values():
            loop.run(self.warmup)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        now = time.perf_counter()
        done = trainer.global_step - self.warmup
        if done > 0:
            self.seconds["lightning"] += now - self.mark
            self.steps["lightning"] += 1
        if done >= 0 and done % self.block == 0 and done < trainer.max_steps - self.warmup:
            for name, loop in self.plain.items():
                self.seconds[name] += loop.run(self.block)
                self.steps[name] += self.block
        self.mark = time.perf_counter()

    def steps_per_s(self) -> dict[str, float]:
        return {name: self.steps[name] / self.seconds[name] for name in self.seconds}


def fit_path(args: argparse.Namespace, data_dir: str, run_root: str, timer: Interleave, *extra):
    cli = LightningDLCLI(
        args=[
            "--config",
            str(CONFIG),
            "--data.data_dir",
            data_dir,
            "--run.root",
            run_root,
            "--trainer.max_steps",
            str(args.steps + args.warmup),
            "--trainer.limit_val_batches",
            "0",
            "--trainer.logger",
            "[]",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
            "--trainer.accelerator",
            "cpu",
            "--trainer.precision",
            args.precision,
            "--model.backbone.init_args.hidden",
            str(args.hidden),
            *extra,
        ]
    )
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


class BareModule(pl.LightningModule):
    """The plain loop's step as a minimal LightningModule: what Lightning itself costs."""

    def __init__(self, steps: int, hidden: list[int]) -> None:
        super().__init__()
        self.net = MLP((3, 32, 32), 10, hidden=hidden, norm="batchnorm")
        self.steps = steps

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(normalize(x, MEAN, STD)), y)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3, fused=True)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def bare_lightning(
    args: argparse.Namespace, data: tuple[torch.Tensor, torch.Tensor], timer: Interleave
) -> None:
    dataset = BatchedTensorDataset(*data)
    loader = DataLoader(
        dataset, batch_size=BATCH, shuffle=True, drop_last=True, collate_fn=passthrough_collate
    )
    trainer = pl.Trainer(
        max_steps=args.steps + args.warmup,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        accelerator="cpu",
        precision=args.precision,
    )
    trainer.fit(BareModule(args.steps + args.warmup, args.hidden), loader)


def paired(
    args: argparse.Namespace,
    data: tuple[torch.Tensor, torch.Tensor],
    run: Callable[[Interleave], None],
    variants: bool,
) -> dict[str, float]:
    total, bf16 = args.steps + args.warmup, args.precision == "bf16-mixed"
    plain = {"plain": PlainLoop(data, args.hidden, total, bf16=bf16)}
    if variants:
        plain["unfused"] = PlainLoop(data, args.hidden, total, fused=False, bf16=bf16)
        plain["x[idx]"] = PlainLoop(data, args.hidden, total, row_gather=False, bf16=bf16)
    timer = Interleave(args.warmup, args.block, plain)
    run(timer)
    return timer.steps_per_s()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--data-dir", help="folder holding cifar-10-batches-py (default: random data)"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--block", type=int, default=20, help="steps per interleaved block")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--precision",
        choices=["32-true", "bf16-mixed"],
        default="32-true",
        help="the precision of every side (the configs' auto would differ between hosts)",
    )
    parser.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=HIDDEN,
        help="hidden widths; a tiny net (--hidden 16) shows the per-step overhead in ms",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: dict[str, list[dict[str, float]]] = {"fit": [], "no_resume": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or str(write_cifar10(Path(tmp) / "cifar", per_batch=10000))
        source = args.data_dir or "random CIFAR-10-shaped data (50,000 train images)"
        images, labels = load_cifar10(data_dir, train=True)  # read once; the plain loops share it
        data = (torch.from_numpy(images), torch.from_numpy(labels))
        for _ in range(args.rounds):
            rows["fit"].append(paired(args, data, lambda t: fit_path(args, data_dir, tmp, t), True))
            rows["no_resume"].append(
                paired(
                    args,
                    data,
                    lambda t: fit_path(args, data_dir, tmp, t, "--run.exact_resume", "false"),
                    False,
                )
            )
            rows["bare"].append(paired(args, data, lambda t: bare_lightning(args, data, t), False))

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[kind])

    def ratio(kind: str, key: str = "plain") -> float:
        return statistics.median(r["lightning"] / r[key] for r in rows[kind])

    print(
        f"\nLightning overhead: MLP {args.hidden} + BatchNorm, batch {BATCH}, {args.steps} timed "
        f"steps per run in blocks of {args.block}, each Lightning run paired with plain loops in "
        f"the same seconds; median of {args.rounds} rounds, torch threads "
        f"{torch.get_num_threads()}, data: {source}; precision {args.precision} on every side"
    )
    table = [
        ("plain PyTorch", med("fit", "plain"), None),
        ("  same, unfused Adam", med("fit", "unfused"), None),
        ("  same, x[idx] batch gather", med("fit", "x[idx]"), None),
        ("lightning_dl fit path", med("fit", "lightning"), ratio("fit")),
        ("  same, exact_resume false", med("no_resume", "lightning"), ratio("no_resume")),
        ("bare LightningModule", med("bare", "lightning"), ratio("bare")),
    ]
    print(f"| {'loop':<28} | {'steps/s':>8} | {'ms/step':>8} | {'/ paired plain':>14} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 10}|{'-' * 16}|")
    for name, rate, r in table:
        shown = f"{r:14.3f}" if r is not None else " " * 14
        print(f"| {name:<28} | {rate:8.1f} | {1000 / rate:8.2f} | {shown} |")
    print(f"ratio (fit path / plain): {ratio('fit'):.3f}")
    over_bare = statistics.median(
        f["lightning"] / f["plain"] / (b["lightning"] / b["plain"])
        for f, b in zip(rows["fit"], rows["bare"], strict=True)
    )
    print(f"fit path / bare LightningModule: {over_bare:.3f}, goal >= 0.97 (our features <= 3%)")
    print(
        "fit path / plain loop with PyTorch's default (unfused) Adam: "
        f"{ratio('fit', 'unfused'):.3f}"
    )
    print(f"fit path / plain loop gathering batches with x[idx]: {ratio('fit', 'x[idx]'):.3f}")
    per_round = {k: [round(r["lightning"] / r["plain"], 3) for r in v] for k, v in rows.items()}
    print(f"paired ratios per round: {per_round}")
    ms = {
        k: statistics.median(1000 / r["lightning"] - 1000 / r["plain"] for r in v)
        for k, v in rows.items()
    }
    print(
        f"overhead over the paired plain loop, ms/step: fit path {ms['fit']:.2f}, "
        f"exact_resume false {ms['no_resume']:.2f}, bare LightningModule {ms['bare']:.2f}"
    )


if __name__ == "__main__":
    main()
