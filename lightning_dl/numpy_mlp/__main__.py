"""Train the NumPy MLP on MNIST or CIFAR-10, print test accuracy, write curves and metrics.

    python -m lightning_dl.numpy_mlp --dataset cifar10 --data-dir DIR --hidden 100 --lr 2e-3 \\
        --batch-size 200 --steps 1500 --momentum 0 [--optimizer adam] [--activation gelu]

The validation error is measured every --eval-every steps (100, the UvA practical's evaluation
frequency); by default the test set then scores the weights with the lowest one (--select best),
and the last step's weights are scored as well for comparison. The test set chooses nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from data_modules.errors import InputFileNotFoundError, ReportedError, UserInputError, run_main
from data_modules.io.atomic import write_json_atomic
from lightning_dl.numpy_mlp.cli import parse_args
from lightning_dl.numpy_mlp.data import Arrays, load_arrays
from lightning_dl.numpy_mlp.mlp import MLP
from lightning_dl.numpy_mlp.optim import Adam
from lightning_dl.numpy_mlp.plots import save_curves
from lightning_dl.numpy_mlp.training import evaluate, get_training_stats

OUTPUTS = ("loss_curve.png", "accuracy_curve.png", "metrics.json")


def read_data(args: argparse.Namespace) -> Arrays:
    """The splits; a bad or missing data file is the user's to fix (one line, exit status 2)."""
    try:
        return load_arrays(
            args.dataset,
            args.data_dir,
            preprocess=args.preprocess,
            val_fraction=args.val_fraction,
            seed=args.seed,
            dtype=np.dtype(args.dtype),
        )
    except ReportedError:
        raise
    except FileNotFoundError as err:  # the readers' messages name the file
        raise InputFileNotFoundError(str(err)) from err
    except ValueError as err:
        raise UserInputError(str(err)) from err


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, __doc__)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = args.out_dir or Path("runs/numpy_mlp") / f"{args.dataset}-{stamp}"
    existing = [name for name in OUTPUTS if (out_dir / name).exists()]
    if existing and not args.overwrite:
        raise UserInputError(
            f"{out_dir} already holds {existing}; pass --overwrite to replace them"
        )

    start = time.perf_counter()
    data = read_data(args)
    if args.batch_size > len(data.train[1]):
        raise UserInputError(
            f"--batch-size {args.batch_size} exceeds the {len(data.train[1])} training samples"
        )
    mlp = MLP(
        data.train[0].shape[1],
        data.num_classes,
        args.hidden,
        args.activation,
        lr=args.lr,
        momentum=args.momentum,
        num_bn_layers=args.num_bn_layers,
        unbiased_running_var=args.bn_running_var == "unbiased",
        init_std=args.init_std,
        seed=args.seed,
        dtype=np.dtype(args.dtype),
    )
    # SGD is the MLP's own (lr and --momentum given above); Adam replaces it
    optimizer = mlp.optimizer if args.optimizer == "sgd" else Adam(mlp, lr=args.lr)
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
        optimizer=optimizer,
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
    run_main(main)
