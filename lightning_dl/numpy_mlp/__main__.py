"""Train the NumPy MLP on MNIST or CIFAR-10, print test accuracy, write curves and metrics.

    python -m lightning_dl.numpy_mlp --dataset cifar10 --data-dir DIR --hidden 100 --lr 2e-3 \\
        --batch-size 200 --steps 1500 --momentum 0

The validation error is measured every --eval-every steps (100, the UvA practical's evaluation
frequency); by default the test set then scores the weights with the lowest one (--select best),
and the last step's weights are scored as well for comparison. The test set chooses nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lightning_dl.atomic import write_json_atomic
from lightning_dl.numpy_mlp.activations import ACTIVATIONS
from lightning_dl.numpy_mlp.data import DATASETS, PREPROCESSINGS, load_arrays
from lightning_dl.numpy_mlp.mlp import MLP
from lightning_dl.numpy_mlp.plots import save_curves
from lightning_dl.numpy_mlp.training import evaluate, get_training_stats

OUTPUTS = ("loss_curve.png", "accuracy_curve.png", "metrics.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m lightning_dl.numpy_mlp",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", choices=DATASETS, required=True)
    p.add_argument("--data-dir", required=True, help="folder the data_modules reader expects")
    p.add_argument("--hidden", type=int, nargs="*", default=[100], help="hidden layer sizes")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="SGD steps, may stop mid-epoch (default 1500 unless --epochs is given)",
    )
    p.add_argument("--epochs", type=int, default=None, help="number of epochs (or cap on them)")
    p.add_argument("--num-bn-layers", type=int, default=0)
    p.add_argument("--init-std", type=float, default=1e-4, help="std of the normal weight init")
    p.add_argument(
        "--preprocess",
        choices=PREPROCESSINGS,
        default="center",
        help="standardize: [0,1] then per-channel z-score; center: 0..255 minus mean "
        "image (UvA recipe the seed protocol needs)",
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help="hold-out from training set")
    p.add_argument(
        "--eval-every", type=int, default=100, help="steps between validation measurements"
    )
    p.add_argument(
        "--select",
        choices=("best", "last"),
        default="best",
        help="weights the test accuracy is reported for: lowest validation error, or last step",
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="curves + metrics.json go here (default runs/numpy_mlp/<dataset>-<time>)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace outputs already in --out-dir")
    args = p.parse_args(argv)
    if args.eval_every < 1:
        p.error(f"--eval-every must be >= 1, got {args.eval_every}")
    if args.steps is None and args.epochs is None:
        args.steps = 1500
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = args.out_dir or Path("runs/numpy_mlp") / f"{args.dataset}-{stamp}"
    existing = [name for name in OUTPUTS if (out_dir / name).exists()]
    if existing and not args.overwrite:
        raise SystemExit(f"{out_dir} already holds {existing}; pass --overwrite to replace them")

    start = time.perf_counter()
    dtype = np.dtype(args.dtype)
    try:
        data = load_arrays(
            args.dataset,
            args.data_dir,
            preprocess=args.preprocess,
            val_fraction=args.val_fraction,
            seed=args.seed,
            dtype=dtype,
        )
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from err
    num_classes = int(data.train[1].max()) + 1
    mlp = MLP(
        data.train[0].shape[1],
        num_classes,
        args.hidden,
        args.activation,
        lr=args.lr,
        momentum=args.momentum,
        num_bn_layers=args.num_bn_layers,
        init_std=args.init_std,
        seed=args.seed,
        dtype=dtype,
    )
    loaded = time.perf_counter()
    stats = get_training_stats(
        mlp,
        data.train,
        data.val,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_steps=args.steps,
        seed=args.seed,
        eval_every=args.eval_every,
        track_best=args.select == "best",
    )
    trained = time.perf_counter()
    last_test_loss, last_test_error = evaluate(mlp, data.test)
    if stats.best_state is not None:
        mlp.load_state_dict(stats.best_state)
    test_loss, test_error = evaluate(mlp, data.test)
    selected_step = stats.best_step if args.select == "best" else stats.steps

    for epoch, values in enumerate(
        zip(
            stats.train_losses, stats.train_errors, stats.val_losses, stats.val_errors, strict=True
        ),
        1,
    ):
        print(
            "epoch {:3d}  train loss {:.4f} err {:.4f}  val loss {:.4f} err {:.4f}".format(
                epoch, *values
            )
        )
    metrics = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "steps": stats.steps,
        "train_losses": stats.train_losses,
        "train_errors": stats.train_errors,
        "val_losses": stats.val_losses,
        "val_errors": stats.val_errors,
        "eval_steps": stats.eval_steps,
        "eval_val_errors": stats.eval_val_errors,
        "selected_step": selected_step,
        "test_loss": test_loss,
        "test_accuracy": 1.0 - test_error,
        "last_step_test_accuracy": 1.0 - last_test_error,
        "seconds": {"load": loaded - start, "train": trained - loaded},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_curves(stats, out_dir)
    write_json_atomic(out_dir / "metrics.json", metrics)
    print(
        f"steps {stats.steps}  final train loss {stats.train_losses[-1]:.4f}  "
        f"val error {stats.val_errors[-1]:.4f}  last-step test accuracy {1.0 - last_test_error:.4f}"
    )
    best_val_error = min(stats.eval_val_errors)
    print(
        f"selected ({args.select}) weights of step {selected_step} (best val error "
        f"{best_val_error:.4f} at step {stats.best_step})  test loss {test_loss:.4f}"
    )
    print(f"test accuracy {1.0 - test_error:.4f}")
    print(f"load {loaded - start:.1f}s  train {trained - loaded:.1f}s  outputs in {out_dir}")
    return metrics


if __name__ == "__main__":
    main()
