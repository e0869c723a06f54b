"""Command-line options of ``python -m lightning_dl.numpy_mlp`` (its docstring is the help)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning_dl.numpy_mlp.activations import ACTIVATIONS
from lightning_dl.numpy_mlp.data import DATASETS, PREPROCESSINGS


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m lightning_dl.numpy_mlp",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", choices=DATASETS, required=True)
    p.add_argument("--data-dir", required=True, help="folder the data_modules reader expects")
    p.add_argument("--hidden", type=int, nargs="*", default=[100], help="hidden layer sizes")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument(
        "--steps", type=int, help="optimizer steps, may end mid-epoch (1500 without --epochs)"
    )
    p.add_argument("--epochs", type=int, default=None, help="number of epochs (or cap on them)")
    p.add_argument("--num-bn-layers", type=int, default=0)
    p.add_argument(
        "--bn-running-var",
        choices=("unbiased", "biased"),
        default="unbiased",
        help="variance BatchNorm's running statistic tracks: PyTorch's or the CMU handout's",
    )
    p.add_argument("--init-std", type=float, default=1e-4, help="std of the normal weight init")
    p.add_argument(
        "--preprocess",
        choices=PREPROCESSINGS,
        default="center",
        help="standardize: [0,1] then per-channel z-score; center: 0..255 minus mean "
        "image (UvA recipe the seed protocol needs)",
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help="hold-out from training set")
    p.add_argument("--eval-every", type=int, default=100, help="steps between validations")
    p.add_argument(
        "--select",
        choices=("best", "last"),
        default="best",
        help="weights the test accuracy is reported for: lowest validation error, or last step",
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out-dir", type=Path, help="for curves, metrics (runs/numpy_mlp/<dataset>-<time>)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace outputs already in --out-dir")
    args = p.parse_args(argv)
    if args.eval_every < 1:
        p.error(f"--eval-every must be >= 1, got {args.eval_every}")
    if not 0.0 < args.val_fraction < 1.0:
        p.error(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    if args.optimizer != "sgd" and args.momentum != 0.0:
        p.error(f"--momentum is SGD's; --optimizer {args.optimizer} has its own moments")
    if not 0.0 <= args.momentum < 1.0:
        p.error(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.steps is None and args.epochs is None:
        args.steps = 1500
    return args
