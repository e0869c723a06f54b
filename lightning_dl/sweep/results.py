"""What a sweep folder shows, rewritten (atomically) whenever a trial finishes.

``results.csv`` and ``results.md`` (every trial, best first), Optuna's matplotlib plots
(``optimization_history.png``, ``param_importances.png``, ``parallel_coordinate.png``) and
``compare.png`` / ``compare.md`` (:mod:`lightning_dl.compare` over the trials' run directories).
Everything is read back from the storage, so any worker, on any machine, writes the same files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from data_modules.errors import UserInputError
from data_modules.io.atomic import write_text_atomic
from lightning_dl import compare
from lightning_dl.sweep.space import Space, cli_value, short
from lightning_dl.sweep.study import (
    LOCK,
    Attr,
    counted,
    held,
    monitor_for,
    run_dir_of,
    take_over,
)
from lightning_dl.training.run.directory import read_summary

# The summary.json figures tabulated for each trial: lightning_dl.training.run.summary.
# REPORTED_METRICS, repeated so that the sweep does not import Lightning (a test checks).
METRICS = ("best_val/acc", "val/acc", "val/loss", "test/acc", "test/loss", "global_step",
           "wall_time_s", "best_val/dist", "val/dist", "test/dist")  # fmt: skip


def _state(trial: FrozenTrial, out: Path) -> str:
    """A RUNNING trial that no worker runs (stopped, or its worker gone) is ``interrupted``."""
    if trial.state == TrialState.RUNNING:
        if trial.user_attrs.get(Attr.INTERRUPTED):
            return "interrupted"
        if (fd := take_over(trial, out)) is not None:
            os.close(fd)
            return "interrupted"
    return trial.state.name.lower()


def write_tables(study: optuna.Study, space: Space, out: Path, metric: str, direction: str) -> None:
    """results.csv and results.md, in one order: complete trials best first, then pruned ones
    (by their last reported value), then the rest; ties in the grid file's order."""
    with held(out / LOCK):  # no worker takes a trial's lock while it is tested here
        trials = [(t, _state(t, out)) for t in counted(study.get_trials())]
    sign = -1 if direction == "maximize" else 1
    trials.sort(
        key=lambda ts: (
            {"complete": 0, "pruned": 1}.get(ts[1], 2),
            0 if ts[0].value is None else sign * ts[0].value,
            space.grid_position(ts[0].params),
            ts[0].number,
        )
    )
    keys = list(space.distributions)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "state", *keys, "value", *METRICS, "run_dir"])
    shown = [m for m in METRICS[:5] if m != metric]
    rows = []
    for trial, state in trials:
        run_dir = run_dir_of(trial) or ""
        summary = read_summary(out / run_dir) if run_dir else {}
        params = [trial.params.get(k, "") for k in keys]
        value = "" if trial.value is None else repr(trial.value)
        figures = [summary.get(m, "") for m in METRICS]
        writer.writerow([trial.number, state, *map(cli_value, params), value, *figures, run_dir])
        cells = [str(trial.number), *map(short, params), compare.cell(trial.value)]
        cells += [compare.cell(summary.get(m)) for m in (*shown, "global_step")]
        rows.append([*cells, state])
    write_text_atomic(out / "results.csv", buffer.getvalue())
    counts = ", ".join(f"{n} {state}" for state, n in Counter(s for _, s in trials).items())
    intro = (
        f"Sorted by `{metric}` ({direction}), as results.csv is; {len(trials)} trials: "
        f"{counts or 'none yet'}. A pruned trial's value is its last reported one."
    )
    columns = ["trial", *(k.split(".")[-1] for k in keys), metric, *shown, "steps", "state"]
    write_text_atomic(out / "results.md", compare.markdown(intro, columns, rows))


def _save_plot(draw: Callable[[], Any], path: Path) -> None:
    """One of Optuna's matplotlib plots, saved; its style stays local."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # a parameter with one value so far gets a flat axis: harmless
        warnings.filterwarnings("ignore", message="Attempting to set identical low and high")
        # trials with equal values: Optuna's importance evaluator says so, and plots equal bars
        warnings.filterwarnings("ignore", message="Target and region quantiles select the same")
        ax = draw()
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(9, 5.5)
        fig.tight_layout()
        compare.save_figure(fig, path)


def write_plots(study: optuna.Study, out: Path, metric: str) -> None:
    """Optimization history, parallel coordinates and (from 2 distinct points) parameter
    importances, of the complete trials (Optuna's plots leave pruned ones out)."""
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    names = sorted({k for t in complete for k in t.params})
    short_names = compare.short_names(names)

    def parallel_coordinate():  # noqa: ANN202
        ax = plots.plot_parallel_coordinate(study, params=names, target_name=metric)
        if len(ax.get_xticklabels()) == len(names) + 1:  # Optuna cuts names at 20 characters
            ax.set_xticks(range(len(names) + 1), [metric, *(short_names[n] for n in names)])
        return ax

    history = lambda: plots.plot_optimization_history(study, target_name=metric)  # noqa: E731
    _save_plot(history, out / "optimization_history.png")
    _save_plot(parallel_coordinate, out / "parallel_coordinate.png")
    if len({tuple(sorted((k, repr(v)) for k, v in t.params.items())) for t in complete}) >= 2:
        importances = lambda: plots.plot_param_importances(study, target_name=metric)  # noqa: E731
        _save_plot(importances, out / "param_importances.png")


def write_all(study: optuna.Study, space: Space, out: Path, metric: str, direction: str) -> None:
    write_tables(study, space, out, metric, direction)
    write_plots(study, out, metric)
    with contextlib.suppress(UserInputError):  # no trial has logged curves yet: nothing to show
        compare.write_comparison([out], out / "compare.png", monitor_for(metric))


def where(out: Path) -> str:
    """The line that says where a sweep's results are."""
    files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    return f"[sweep] results in {out}/: {', '.join(files)}"
