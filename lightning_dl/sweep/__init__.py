"""Sweeps on Optuna: ``python -m lightning_dl.sweep --config base.yaml --space space.yaml``.

``space.yaml`` maps dotted command-line keys to a list of values or a distribution::

    model.backbone.init_args.hidden: [[64], [256], [1024]]        # a list: grid or choices
    model.backbone.init_args.dropout: {low: 0.0, high: 0.5}      # a float range
    data.init_args.batch_size: {choices: [64, 128, 256]}          # categorical

Each trial is a run of ``python -m lightning_dl.fit`` in ``<out>/runs/`` (arguments after ``--``
go to every run), scored by ``--metric`` from its summary.json into ``<out>/results.md``. Rerun
the same command to continue a sweep; ``--workers N`` or machines sharing ``--storage`` share it."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from data_modules.errors import EXIT_TERMINATED, InputFileNotFoundError, UserInputError
from lightning_dl import compare
from lightning_dl.sweep.results import where
from lightning_dl.sweep.space import check_keys, load_space
from lightning_dl.sweep.study import PRUNERS, Sweep, make_sampler, monitor_for

__all__ = ["load_space", "main"]
EXIT_INTERRUPTED = 130  # 128 + SIGINT
SAMPLERS = ("grid", "random", "tpe")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lightning_dl.sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add("--config", action="append", required=True, help="base config(s) of every run")
    add("--space", "--grid", required=True, help="YAML: key -> values, {low, high, log}, {choices}")
    add("--sampler", choices=SAMPLERS, help="default: grid when every key lists values, else tpe")
    add("--n-trials", type=int, help="trials of the sweep, all workers together (grid: its size)")
    add("--metric", default="best_val/acc", help="summary.json key to optimise")
    add("--direction", choices=("maximize", "minimize"), help="default: minimize a loss or dist")
    add("--pruner", choices=PRUNERS, help="stop lagging trials early (default: median; grid: none)")
    add("--pruner-startup-trials", type=int, default=5, help="median: trials done before pruning")
    add("--pruner-warmup-steps", type=int, default=0, help="steps a trial trains before pruning")
    add("--startup-trials", type=int, help="tpe: random trials first (default: n-trials/3, 1..10)")
    add("--seed", type=int, help="sampler seed (give each machine its own)")
    add("--out", help="sweep folder (default: runs/sweeps/<space file stem>)")
    add("--storage", help="default: sqlite:///<out>/optuna.db; or postgresql, mysql, journal:PATH")
    add("--study-name", help="study in the storage (default: the --out folder name)")
    add("--workers", type=int, default=1, help="trials at once in this process")
    return p


def build(args: argparse.Namespace, extra: list[str]) -> Sweep:
    for config in args.config:
        if not Path(config).is_file():
            raise InputFileNotFoundError(f"--config {config}: no such file")
    space = load_space(args.space)
    check_keys(args.config, space, extra)
    sampler = args.sampler or ("grid" if space.is_grid else "tpe")
    n_trials = args.n_trials
    if sampler == "grid":
        if not space.is_grid:
            raise UserInputError(
                f"--sampler grid needs a list of values for every key; "
                f"{', '.join(k for k in space.distributions if k not in space.lists)} given as a "
                "distribution (use --sampler random or tpe)"
            )
        n_trials = min(n_trials or space.grid_size(), space.grid_size())
    elif n_trials is None:
        raise UserInputError(f"--n-trials is needed with --sampler {sampler}")
    if n_trials < 1 or args.workers < 1:
        raise UserInputError("--n-trials and --workers must be at least 1")
    pruner = args.pruner or ("none" if sampler == "grid" else "median")
    if pruner != "none" and not monitor_for(args.metric).startswith("val/"):
        raise UserInputError(
            f"--pruner {pruner}: pruning watches a metric logged at validation (val/...); "
            f"--metric {args.metric} has none (use --pruner none)"
        )
    lower_is_better = any(word in args.metric for word in compare.LOWER_IS_BETTER)
    out = Path(args.out or Path("runs") / "sweeps" / Path(args.space).stem)
    startup_trials = args.startup_trials or max(1, min(10, n_trials // 3))
    return Sweep(
        configs=args.config,
        space=space,
        out=out,
        n_trials=n_trials,
        metric=args.metric,
        direction=args.direction or ("minimize" if lower_is_better else "maximize"),
        storage_url=args.storage or f"sqlite:///{out.resolve() / 'optuna.db'}",
        study_name=args.study_name or out.resolve().name,
        sampler=make_sampler(sampler, space, args.seed, startup_trials),
        pruner=pruner,
        pruner_startup_trials=args.pruner_startup_trials,
        pruner_warmup_steps=args.pruner_warmup_steps,
        extra=extra,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints its own lines
    sweep = build(args, extra).open()
    terminated = []

    def on_sigterm(signum: int, frame: object) -> None:  # a scheduler's stop, as Ctrl-C
        terminated.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        trials = sweep.run(args.workers)
    except KeyboardInterrupt:
        print(f"[sweep] interrupted; run the same command to continue\n{where(sweep.out)}")
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    print((sweep.out / "results.md").read_text())
    if unfinished := [t.number for t in trials if not t.state.is_finished()]:
        print(f"[sweep] still running or waiting elsewhere: trials {unfinished}")
    if failed := [t.number for t in trials if t.state == TrialState.FAIL]:
        print(f"[sweep] failed: trials {failed} (their logs are in {sweep.out / 'logs'})")
    print(where(sweep.out))
    return 1 if failed else 0
