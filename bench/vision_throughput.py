"""Training images/s of the ConvNet and ResNet-18 under precision, layout and compile settings.

Each setting is timed twice in the same run: the project's Lightning path (Classifier + CIFAR-10
DataModule: batched uint8 gather, on-device crop/flip/normalise, Trainer with ``precision``) and a
plain PyTorch loop doing the same work (same model, same augmentation, Adam, autocast). Data are
random uint8 images, so only speed is measured. Step time: the median of the timed steps on CPU;
on CUDA the timed steps' total between two synchronisations, divided by their number.

The last lines say what ``precision: auto`` resolves to on this device and whether it is the
faster of fp32 and bf16 here (plain loop, channels_last as the configs use it).

    PYTHONPATH=. python bench/vision_throughput.py --quick            # ~10 min on 2 busy cores
    PYTHONPATH=. python bench/vision_throughput.py --models convnet --batch-sizes 32 256
    PYTHONPATH=. python bench/vision_throughput.py --device cuda --batch-sizes 256 \
        --settings fp32+cl bf16+cl
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from data_modules.batches import augment
from data_modules.images.cifar10 import CIFAR10DataModule
from lightning_dl.models.convnet import ConvNet
from lightning_dl.models.resnet import ResNet18
from lightning_dl.tasks.classifier import Classifier
from lightning_dl.training.precision import resolve_precision

SHAPE, CLASSES = (3, 32, 32), 10
MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "convnet": lambda s, n: ConvNet(s, n),
    "resnet18": lambda s, n: ResNet18(s, n, stem="cifar"),  # from-scratch CIFAR ResNet-18
}


@dataclass(frozen=True)
class Setting:
    name: str
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False


SETTINGS = {
    s.name: s
    for s in [
        Setting("fp32"),
        Setting("bf16", bf16=True),
        Setting("fp32+cl", channels_last=True),
        Setting("bf16+cl", bf16=True, channels_last=True),
        Setting("compile", compile=True),
        Setting("compile+bf16+cl", bf16=True, channels_last=True, compile=True),
    ]
}


def random_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8), rng.integers(0, CLASSES, n)


class RandomCIFAR(CIFAR10DataModule):
    """The real CIFAR-10 DataModule path, fed random images of the right shape."""

    def __init__(self, n: int, **kwargs) -> None:
        super().__init__(val_split=0, augment=True, **kwargs)
        self.n = n

    def load_split(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        return random_images(self.n if train else 8, seed=int(train))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def plain_loop(
    model_name: str, s: Setting, batch: int, warmup: int, steps: int, device: str = "cpu"
) -> float:
    """Seconds per step of a hand-written loop doing the Lightning path's work."""
    torch.manual_seed(0)
    model = MODELS[model_name](SHAPE, CLASSES).to(device)
    if s.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if s.compile:
        model.compile()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4, fused=True)
    images, labels = random_images(batch * (warmup + steps), seed=1)
    images, labels = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    mean = torch.tensor(RandomCIFAR.mean, device=device)
    std = torch.tensor(RandomCIFAR.std, device=device)
    times = []
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            timed = time.perf_counter()
        start = time.perf_counter()
        idx = torch.randint(0, len(images), (batch,), device=device)
        x = augment.random_hflip(augment.random_crop(images[idx], 4))
        x, y = augment.normalize(x, mean, std), labels[idx]
        if s.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=s.bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    _sync(device)
    return (time.perf_counter() - timed) / steps if device == "cuda" else statistics.median(times)


class StepTimer(pl.Callback):
    """Seconds between consecutive train-batch ends: data fetch + transfer hooks + step."""

    def __init__(self, device: str) -> None:
        self.stamps: list[float] = []
        self.device = device

    def on_train_batch_end(self, *args) -> None:
        self.stamps.append(time.perf_counter())

    def seconds_per_step(self, warmup: int) -> float:
        return statistics.median(np.diff(self.stamps[warmup - 1 :]))


class SyncedStepTimer(StepTimer):
    """On CUDA: the timed steps' total between two synchronisations, per step."""

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.global_step in (self.warmup, self.warmup + self.steps):
            torch.cuda.synchronize()
            self.stamps.append(time.perf_counter())

    def seconds_per_step(self, warmup: int) -> float:
        return (self.stamps[-1] - self.stamps[0]) / self.steps


def lightning_loop(
    model_name: str, s: Setting, batch: int, warmup: int, steps: int, device: str = "cpu"
) -> float:
    """Seconds per step of Trainer.fit on the Classifier with the same settings."""
    torch.manual_seed(0)
    model = Classifier(
        MODELS[model_name],
        num_classes=CLASSES,
        input_shape=SHAPE,
        optimizer=partial(torch.optim.Adam, lr=1e-4),
        channels_last=s.channels_last,
        compile=s.compile,
    )
    if device == "cuda":
        timer: StepTimer = SyncedStepTimer(device)
        timer.warmup, timer.steps = warmup, steps
    else:
        timer = StepTimer(device)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if s.bf16 else "32-true",
        max_steps=warmup + steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=RandomCIFAR(batch * (warmup + steps), batch_size=batch))
    return timer.seconds_per_step(warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128, 256])
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compile: first)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per setting")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="batch 32 and 128 (ResNet-18: 32), 2 warm-up + 4 timed steps",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)  # no per-Trainer banners
    batch_sizes = {m: args.batch_sizes for m in args.models}
    if args.quick:
        args.warmup, args.steps = 2, 4
        batch_sizes = {m: [32] if m == "resnet18" else [32, 128] for m in args.models}

    where = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else (
            f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} threads"
        )
    )
    print(f"torch {torch.__version__} on {where}; {args.warmup} warm-up + {args.steps} timed steps")
    header = f"{'model':9} {'batch':>5} {'setting':16} {'plain img/s':>11} {'lightning img/s':>15}"
    print(header + f" {'L/plain':>7} {'vs fp32@same batch':>18} {'vs fp32@first batch':>19}")
    best: dict[str, tuple[float, str]] = {}
    measured: dict[tuple[str, int, str], float] = {}
    for model_name in args.models:
        base = None
        for batch in batch_sizes[model_name]:
            same = None
            for name in args.settings:
                s = SETTINGS[name]
                timing = (model_name, s, batch, args.warmup, args.steps, args.device)
                plain = batch / plain_loop(*timing)
                light = batch / lightning_loop(*timing)
                measured[(model_name, batch, name)] = plain
                if name == "fp32":
                    same = plain
                    base = base or plain  # fp32 eager at the first batch size: the reference
                speedup = plain / base if base else float("nan")
                at_batch = plain / same if same else float("nan")
                print(
                    f"{model_name:9} {batch:5d} {name:16} {plain:11.1f} {light:15.1f} "
                    f"{light / plain:7.2f} {at_batch:17.2f}x {speedup:18.2f}x",
                    flush=True,
                )
                if speedup > best.get(model_name, (0.0, ""))[0]:
                    best[model_name] = (speedup, f"{name} @ batch {batch}")
    for model_name, (speedup, at) in best.items():
        print(
            f"best {model_name}: {at}, {speedup:.2f}x fp32 eager at batch "
            f"{batch_sizes[model_name][0]} (plain loop)"
        )
    report_auto(measured, args.device)


def report_auto(measured: dict[tuple[str, int, str], float], device: str) -> None:
    """Say what precision: auto picks here, and whether it was the faster of fp32 and bf16."""
    auto = resolve_precision("auto", "gpu" if device == "cuda" else "cpu")
    picked = "bf16" if auto == "bf16-mixed" else "fp32"
    for (model_name, batch, name), rate in measured.items():
        if name not in ("fp32+cl", "fp32"):
            continue
        other = measured.get((model_name, batch, name.replace("fp32", "bf16")))
        if other is None:
            continue
        faster = "bf16" if other > rate else "fp32"
        verdict = "the faster one" if faster == picked else "NOT the faster one"
        print(
            f"precision auto -> {auto} on {device}: {model_name} batch {batch} "
            f"({name.replace('fp32', '*')}): fp32 {rate:.1f} vs bf16 {other:.1f} img/s, {verdict}"
        )


if __name__ == "__main__":
    main()
