"""Steps/s of our fit path against a plain PyTorch loop: same MLP, data, batch size, steps.

    python bench/lightning_overhead.py [--data-dir DIR_WITH_cifar-10-batches-py] [--steps 300]
                                       [--rounds 3] [--threads N]

Both sides train configs/cifar10_mlp.yaml's MLP (400-300-250-200-150-100 + BatchNorm, Adam 1e-3,
cosine learning-rate decay stepped every step, batch 200) on CIFAR-10-shaped uint8 data held in
memory, normalised per batch. Both use the fused Adam kernel (the Classifier's default); a plain
loop with PyTorch's default unfused Adam is printed too, for scale. The fit path is
built by LightningDLCLI from that config exactly as ``python -m lightning_dl.fit`` builds it
(CSV logging, train accuracy, checkpoint callback), with validation turned off so that only
training steps are timed. Timing skips ``--warmup`` steps; rounds alternate the two sides and
the median of ``--rounds`` is reported. Goal: ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from torch.utils.data import DataLoader  # noqa: E402

from data_modules.augment import normalize  # noqa: E402
from data_modules.batched import BatchedTensorDataset, passthrough_collate  # noqa: E402
from data_modules.cifar10 import CIFAR10DataModule, load_cifar10  # noqa: E402
from lightning_dl.cli import LightningDLCLI  # noqa: E402
from lightning_dl.models.mlp import MLP  # noqa: E402
from tests.datafiles import write_cifar10  # noqa: E402

CONFIG = ROOT / "configs" / "cifar10_mlp.yaml"
HIDDEN = [400, 300, 250, 200, 150, 100]


class StepTimer(pl.Callback):
    """Wall time from the end of the warm-up steps to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        self.end, self.steps = time.perf_counter(), trainer.global_step - self.warmup


def lightning_steps_per_s(
    data_dir: str, steps: int, warmup: int, run_root: str, extra: tuple[str, ...] = ()
) -> float:
    cli = LightningDLCLI(
        args=[
            *extra,
            "--config",
            str(CONFIG),
            "--data.data_dir",
            data_dir,
            "--run.root",
            run_root,
            "--trainer.max_steps",
            str(steps + warmup),
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
        ]
    )
    timer = StepTimer(warmup)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return timer.steps / (timer.end - timer.start)


class BareModule(pl.LightningModule):
    """The plain loop's step as a minimal LightningModule: what Lightning itself costs."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.net = MLP((3, 32, 32), 10, hidden=HIDDEN, norm="batchnorm")
        self.steps = steps
        self.mean, self.std = (
            torch.tensor(CIFAR10DataModule.mean),
            torch.tensor(CIFAR10DataModule.std),
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(normalize(x, self.mean, self.std)), y)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3, fused=True)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def bare_lightning_steps_per_s(data_dir: str, steps: int, warmup: int) -> float:
    """Bare module, plain shuffling DataLoader, no logger, checkpointing or callbacks of ours."""
    images, labels = load_cifar10(data_dir, train=True)
    dataset = BatchedTensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    loader = DataLoader(
        dataset, batch_size=200, shuffle=True, drop_last=True, collate_fn=passthrough_collate
    )
    timer = StepTimer(warmup)
    trainer = pl.Trainer(
        max_steps=steps + warmup,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        accelerator="cpu",
    )
    trainer.fit(BareModule(steps + warmup), loader)
    return timer.steps / (timer.end - timer.start)


def plain_steps_per_s(
    data_dir: str, steps: int, warmup: int, batch_size: int = 200, fused: bool = True
) -> float:
    images, labels = load_cifar10(data_dir, train=True)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    mean, std = torch.tensor(CIFAR10DataModule.mean), torch.tensor(CIFAR10DataModule.std)
    model = MLP((3, 32, 32), 10, hidden=HIDDEN, norm="batchnorm")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps + warmup)  # as config
    model.train()
    order = torch.randperm(len(x))
    start, done = 0.0, 0
    for step in range(steps + warmup):
        if step == warmup:
            start = time.perf_counter()
        i = (step * batch_size) % (len(x) - batch_size)
        idx = order[i : i + batch_size]
        loss = F.cross_entropy(model(normalize(x[idx], mean, std)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        done = step + 1 - warmup
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--data-dir", help="folder holding cifar-10-batches-py (default: random data)"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or str(write_cifar10(Path(tmp) / "cifar", per_batch=10000))
        source = args.data_dir or "random CIFAR-10-shaped data (50,000 train images)"
        plain, unfused, bare, ours, no_resume = [], [], [], [], []
        for _ in range(args.rounds):
            bare.append(bare_lightning_steps_per_s(data_dir, args.steps, args.warmup))
            plain.append(plain_steps_per_s(data_dir, args.steps, args.warmup))
            unfused.append(plain_steps_per_s(data_dir, args.steps, args.warmup, fused=False))
            ours.append(lightning_steps_per_s(data_dir, args.steps, args.warmup, tmp))
            no_resume.append(
                lightning_steps_per_s(
                    data_dir, args.steps, args.warmup, tmp, ("--run.exact_resume", "false")
                )
            )
    p, u, b, o, n = (statistics.median(v) for v in (plain, unfused, bare, ours, no_resume))
    print(
        f"\nLightning overhead: MLP {HIDDEN} + BatchNorm, batch 200, {args.steps} timed steps, "
        f"median of {args.rounds}, torch threads {torch.get_num_threads()}, data: {source}"
    )
    print(f"| {'loop':<28} | {'steps/s':>8} | {'ms/step':>8} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 10}|")
    print(f"| {'plain PyTorch':<28} | {p:8.1f} | {1000 / p:8.2f} |")
    print(f"| {'  same, unfused Adam':<28} | {u:8.1f} | {1000 / u:8.2f} |")
    print(f"| {'bare LightningModule':<28} | {b:8.1f} | {1000 / b:8.2f} |")
    print(f"| {'lightning_dl fit path':<28} | {o:8.1f} | {1000 / o:8.2f} |")
    print(f"| {'  same, exact_resume false':<28} | {n:8.1f} | {1000 / n:8.2f} |")
    print(f"ratio (fit path / plain): {o / p:.3f} (exact_resume false: {n / p:.3f}), goal >= 0.95")
    print(f"bare LightningModule / plain: {b / p:.3f} (Lightning's own loop)")
    print(f"fit path / plain loop with PyTorch's default (unfused) Adam: {o / u:.3f}")
    print(
        f"steps/s per round: plain {plain}, unfused {unfused}, bare {bare}, fit path {ours}, "
        f"exact_resume false {no_resume}"
    )


if __name__ == "__main__":
    main()
