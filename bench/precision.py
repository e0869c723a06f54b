"""fp32 against bf16-mixed for each shipped config: training step time and accuracy, paired.

Every config trains twice through the real fit path (``lightning_dl.fit.main``), once with
``--trainer.precision 32-true`` and once with ``bf16-mixed``, the two interleaved round by round
so that both share the same seconds of a busy host. Step time is the median time from a batch's
start to its end (forward, backward, optimizer) over the steps after the first 10; accuracy is
the run's ``test/acc`` (best checkpoint). ``--steps`` shortens the runs (then the accuracy is
that of the shorter run: say so). The last column says whether bf16 is at least as fast and as
accurate (within ``--acc-tolerance``), i.e. whether ``precision: auto`` may pick it here.

    PYTHONPATH=. python bench/precision.py --configs quickstart mnist_mlp \\
        --data mnist_mlp=DATA/mnist --rounds 1
    PYTHONPATH=. python bench/precision.py --configs cifar10_convnet --steps 60 --data \\
        cifar10_convnet=DATA/cifar10 --no-accuracy          # step time only

The host is named in the output (CPU model and whether it has native bf16).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from lightning_dl.fit import main as fit_main
from lightning_dl.training.precision import cpu_has_native_bf16, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("32-true", "bf16-mixed")


class StepTimer(pl.Callback):
    """Seconds from each training batch's start to its end, kept on the class (in-process runs)."""

    seconds: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._started = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the step's kernels, not just their launch
        StepTimer.seconds.append(time.perf_counter() - self._started)


def host() -> str:
    """The CPU model and its bf16 support, or the GPU's name."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown CPU",
    )  # fmt: skip
    flags = Path("/proc/cpuinfo").read_text()
    kind = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return f"{model}, {torch.get_num_threads()} threads, bf16: {', '.join(kind) or 'not native'}"


def run_once(config: str, precision: str, args: argparse.Namespace, out: Path) -> dict:
    timer = importlib.import_module("bench.precision").StepTimer  # the class the CLI builds
    timer.seconds = []
    extra = ["--data.data_dir", args.data[config]] if config in args.data else []
    if args.steps:
        extra += ["--trainer.max_steps", str(args.steps), "--trainer.max_epochs", "-1"]
        extra += ["--trainer.val_check_interval", str(max(args.steps // 2, 1))]
        extra += ["--trainer.check_val_every_n_epoch", "null"]
    if not args.accuracy:
        extra += ["--trainer.limit_val_batches", "0", "--trainer.limit_test_batches", "1"]
    summary = fit_main(
        [
            "--config", str(ROOT / "configs" / f"{config}.yaml"), *extra,
            "--trainer.precision", precision, "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.callbacks+=bench.precision.StepTimer",
            "--run.dir", str(out / f"{config}-{precision}-{time.time_ns()}"),
        ]
    )  # fmt: skip
    steady = timer.seconds[10:] or timer.seconds
    return {"ms": 1e3 * statistics.median(steady), "acc": summary.get("test/acc")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["quickstart", "mnist_mlp", "cifar10_mlp"])
    p.add_argument("--data", nargs="*", default=[], help="CONFIG=DATA_DIR for configs' data")
    p.add_argument("--steps", type=int, default=None, help="shorter runs than the configs'")
    p.add_argument("--rounds", type=int, default=1, help="fp32/bf16 pairs per config")
    p.add_argument("--no-accuracy", dest="accuracy", action="store_false")
    p.add_argument("--acc-tolerance", type=float, default=0.005)
    args = p.parse_args()
    args.data = dict(item.split("=", 1) for item in args.data)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")

    print(f"host: {host()}; native bf16 (CPU flags): {cpu_has_native_bf16()}")
    print(f"precision auto resolves to: {resolve_precision('auto')}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            results: dict[str, list[dict]] = {p: [] for p in PRECISIONS}
            for _ in range(args.rounds):
                for precision in PRECISIONS:  # interleaved: both see the same host load
                    results[precision].append(run_once(config, precision, args, Path(tmp)))
            ms = {p: statistics.median(r["ms"] for r in results[p]) for p in PRECISIONS}
            acc = {p: [r["acc"] for r in results[p]] for p in PRECISIONS}
            rows.append((config, ms, acc))
            print(_row(config, ms, acc, args), flush=True)
    print(
        "\n| config | fp32 ms/step | bf16 ms/step | bf16 speed-up | fp32 test acc | "
        "bf16 test acc | bf16 at least as fast and as accurate |"
    )
    print("|---|---|---|---|---|---|---|")
    for config, ms, acc in rows:
        print(_row(config, ms, acc, args))


def _row(config: str, ms: dict, acc: dict, args: argparse.Namespace) -> str:
    speedup = ms["32-true"] / ms["bf16-mixed"]

    def accs(values: list) -> str:
        return " / ".join(f"{v:.4f}" for v in values) if args.accuracy else "-"

    if args.accuracy:
        as_accurate = statistics.mean(acc["bf16-mixed"]) >= (
            statistics.mean(acc["32-true"]) - args.acc_tolerance
        )
    else:
        as_accurate = True
    verdict = "yes" if speedup >= 1.0 and as_accurate else "no"
    if not args.accuracy:
        verdict += " (speed only)"
    return (
        f"| {config} | {ms['32-true']:.1f} | {ms['bf16-mixed']:.1f} | {speedup:.2f}x | "
        f"{accs(acc['32-true'])} | {accs(acc['bf16-mixed'])} | {verdict} |"
    )


if __name__ == "__main__":
    main()
