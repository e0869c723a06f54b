"""The ``python -m lightning_dl.sweep`` command line (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from data_modules.errors import InputFileNotFoundError, UserInputError
from lightning_dl.sweep.keys import check_keys
from lightning_dl.sweep.pruners import PRUNERS, monitor_for
from lightning_dl.sweep.runner import Sweep, make_sampler, require_grid
from lightning_dl.sweep.space import load_space
from lightning_dl.sweep.storage import default_storage_url

EXIT_INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    import lightning_dl.sweep as package

    p = argparse.ArgumentParser(
        prog="python -m lightning_dl.sweep",
        description=package.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", action="append", required=True, help="base config(s) of every run")
    p.add_argument(
        "--space",
        "--grid",
        dest="space",
        required=True,
        help="YAML: dotted key -> list of values or {low, high, log} / {choices}",
    )
    p.add_argument(
        "--sampler",
        choices=("grid", "random", "tpe"),
        help="default: grid when every key lists values, else tpe",
    )
    p.add_argument(
        "--n-trials",
        type=int,
        help="trials of the whole sweep, all workers together (grid: its size)",
    )
    p.add_argument("--metric", default="best_val/acc", help="summary.json key to optimise")
    p.add_argument(
        "--direction",
        choices=("maximize", "minimize"),
        help="default: minimize for a loss, else maximize",
    )
    p.add_argument(
        "--pruner",
        choices=PRUNERS,
        help="stop bad trials early on the logged val metric (default: none for a "
        "grid, else median)",
    )
    p.add_argument(
        "--pruner-startup-trials",
        type=int,
        default=5,
        help="median: trials that finish before any is pruned",
    )
    p.add_argument(
        "--pruner-warmup-steps",
        type=int,
        default=0,
        help="steps a trial trains before it can be pruned",
    )
    p.add_argument(
        "--startup-trials",
        type=int,
        help="tpe: random trials first (default: a third of --n-trials, 1..10)",
    )
    p.add_argument("--seed", type=int, help="sampler seed (give each machine its own)")
    p.add_argument("--out", help="sweep folder (default: runs/sweeps/<space file stem>)")
    p.add_argument(
        "--storage",
        help="Optuna storage URL (default: sqlite:///<out>/optuna.db); "
        "postgresql://..., mysql://... or journal:PATH to share it",
    )
    p.add_argument("--study-name", help="study in the storage (default: the --out folder name)")
    p.add_argument("--workers", type=int, default=1, help="trials at once in this process")
    return p  # fmt: skip


def build(args: argparse.Namespace, extra: list[str]) -> Sweep:
    for config in args.config:
        if not Path(config).is_file():
            raise InputFileNotFoundError(f"--config {config}: no such file")
    space = load_space(args.space)
    check_keys(args.config, space, args.space, extra)
    sampler_name = args.sampler or ("grid" if space.is_grid else "tpe")
    n_trials = args.n_trials
    if sampler_name == "grid":
        require_grid(space)
        n_trials = min(n_trials or space.grid_size(), space.grid_size())
    elif n_trials is None:
        raise UserInputError(f"--n-trials is needed with --sampler {sampler_name}")
    if n_trials < 1 or args.workers < 1:
        raise UserInputError("--n-trials and --workers must be at least 1")
    pruner = args.pruner or ("none" if sampler_name == "grid" else "median")
    if pruner != "none" and not monitor_for(args.metric).startswith("val/"):
        raise UserInputError(
            f"--pruner {pruner}: pruning watches a metric logged at validation (val/...); "
            f"--metric {args.metric} has none (use --pruner none)"
        )
    lower_is_better = any(word in args.metric for word in ("loss", "dist"))  # dist: Levenshtein
    direction = args.direction or ("minimize" if lower_is_better else "maximize")
    startup = args.startup_trials or max(1, min(10, n_trials // 3))
    out = Path(args.out or Path("runs") / "sweeps" / Path(args.space).stem)
    return Sweep(
        configs=args.config,
        space=space,
        out=out,
        n_trials=n_trials,
        metric=args.metric,
        direction=direction,
        storage_url=args.storage or default_storage_url(out),
        study_name=args.study_name or out.resolve().name,
        sampler=make_sampler(sampler_name, space, args.seed, startup),
        pruner=pruner,
        pruner_startup_trials=args.pruner_startup_trials,
        pruner_warmup_steps=args.pruner_warmup_steps,
        extra=extra,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    args = parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints its own lines
    sweep = build(args, extra)
    sweep.out.mkdir(parents=True, exist_ok=True)
    sweep.open()
    try:
        trials = sweep.run(args.workers)
    except KeyboardInterrupt:
        print("[sweep] interrupted; run the same command to continue")
        return EXIT_INTERRUPTED
    print((sweep.out / "results.md").read_text())
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    unfinished = [t.number for t in trials if not t.state.is_finished()]
    if unfinished:
        print(f"[sweep] still running or waiting elsewhere: trials {unfinished}")
    if failed:
        print(f"[sweep] failed: trials {failed} (their logs are in {sweep.out / 'logs'})")
    return 1 if failed else 0
