"""What a sweep folder shows, rewritten (atomically) whenever a trial finishes.

``results.csv`` (every trial: state, values, its run's summary figures), ``results.md`` (sorted
by the metric), ``optimization_history.png``, ``param_importances.png`` and
``parallel_coordinate.png`` (Optuna's matplotlib plots), and ``compare.png`` / ``compare.md``
(:mod:`lightning_dl.compare` over the trials' run directories). Everything is read back from the
storage, so any worker, on any machine, writes the same files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from data_modules.errors import UserInputError
from data_modules.io.atomic import atomic_path, write_text_atomic
from lightning_dl.sweep.pruners import monitor_for
from lightning_dl.sweep.space import Space, cli_value
from lightning_dl.sweep.trial_attrs import INTERRUPTED, counted, run_dir_of
from lightning_dl.training.run.directory import read_summary

# The summary.json figures tabulated for each trial:
# lightning_dl.training.run.summary.REPORTED_METRICS,
# repeated here so that the sweep does not import Lightning (tests/test_sweep.py checks they agree).
METRICS = ("best_val/acc", "val/acc", "val/loss", "test/acc", "test/loss", "global_step",
           "wall_time_s", "best_val/dist", "val/dist", "test/dist")  # fmt: skip


def _rows(study: optuna.Study, space: Space) -> list[tuple[FrozenTrial, dict[str, Any]]]:
    rows = [(t, {"run_dir": run_dir_of(t) or ""}) for t in counted(study.get_trials())]
    if space.is_grid:  # a grid reads best in its file's order
        rows.sort(key=lambda r: (space.grid_position(r[0].params), r[0].number))
    return rows


def _state(trial: FrozenTrial) -> str:
    if trial.state == TrialState.RUNNING and trial.user_attrs.get(INTERRUPTED):
        return "interrupted"  # continued in place by the next command
    return trial.state.name.lower()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else cli_value(value)


def write_tables(study: optuna.Study, space: Space, out: Path, metric: str, direction: str) -> None:
    keys = [p.key for p in space.params]
    rows = [(t, info, read_summary(out / info["run_dir"]) if info["run_dir"] else {})
            for t, info in _rows(study, space)]  # fmt: skip
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "state", *keys, "value", *METRICS, "run_dir"])
    for trial, info, summary in rows:
        params = [cli_value(trial.params[k]) if k in trial.params else "" for k in keys]
        value = "" if trial.value is None else repr(trial.value)
        writer.writerow([trial.number, _state(trial), *params, value,
                         *(summary.get(m, "") for m in METRICS), info["run_dir"]])  # fmt: skip
    write_text_atomic(out / "results.csv", buffer.getvalue())

    sign = -1 if direction == "maximize" else 1
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}

    def sort_key(row: tuple[FrozenTrial, dict, dict]) -> tuple[int, float, int]:
        trial = row[0]
        value = trial.value if trial.value is not None else float("inf") * -sign
        return order.get(trial.state, 2), sign * value, trial.number

    states = [t.state for t, _, _ in rows]
    counts = ", ".join(f"{states.count(s)} {s.name.lower()}" for s in TrialState if states.count(s))
    shown = [m for m in METRICS[:5] if m != metric]
    columns = ["trial", *(k.split(".")[-1] for k in keys), metric, *shown, "steps", "state"]
    lines = [
        f"Sorted by `{metric}` ({direction}); {len(rows)} trials: {counts or 'none yet'}. A "
        "pruned trial's value is its last reported one.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for trial, _, summary in sorted(rows, key=sort_key):
        cells = [str(trial.number)]
        cells += [_param(trial.params[k]) if k in trial.params else "" for k in keys]
        cells += [_fmt(trial.value), *(_fmt(summary.get(m)) for m in shown)]
        cells += [_fmt(summary.get("global_step")), _state(trial)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    write_text_atomic(out / "results.md", "\n".join(lines) + "\n")


def _save_plot(draw: Callable[[], Any], path: Path) -> None:
    """Run one of Optuna's matplotlib plots and save its figure; its style stays local."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # a parameter with one value so far gets a flat axis: harmless
        warnings.filterwarnings("ignore", message="Attempting to set identical low and high")
        # trials with equal values: Optuna's importance evaluator says so, and plots equal bars
        warnings.filterwarnings("ignore", message="Target and region quantiles select the same")
        ax = draw()
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        try:
            fig.set_size_inches(9, 5.5)
            fig.tight_layout()
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=110)
        finally:
            plt.close(fig)


def write_plots(study: optuna.Study, out: Path, metric: str) -> list[Path]:
    """Optimization history, parallel coordinates and (from 2 trials) parameter importances,
    of the complete trials (Optuna's plots leave pruned ones out)."""
    from optuna.visualization import matplotlib as plots

    from lightning_dl.compare import short_names

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    names = sorted({k for t in complete for k in t.params})
    short = short_names(names)

    def parallel_coordinate():  # noqa: ANN202
        ax = plots.plot_parallel_coordinate(study, params=names, target_name=metric)
        if len(ax.get_xticklabels()) == len(names) + 1:  # Optuna cuts names at 20 characters
            ax.set_xticks(range(len(names) + 1), [metric, *(short[n] for n in names)])
        return ax

    written = [out / "optimization_history.png", out / "parallel_coordinate.png"]
    _save_plot(lambda: plots.plot_optimization_history(study, target_name=metric), written[0])
    _save_plot(parallel_coordinate, written[1])
    distinct = {tuple(sorted((k, repr(v)) for k, v in t.params.items())) for t in complete}
    if len(distinct) >= 2:
        written.append(out / "param_importances.png")
        _save_plot(lambda: plots.plot_param_importances(study, target_name=metric), written[-1])
    return written


def write_comparison(out: Path, metric: str) -> None:
    """compare.png / compare.md over the trials that have logged something."""
    from lightning_dl import compare

    with contextlib.suppress(UserInputError):  # no trial has logged curves yet: nothing to show
        compare.write_comparison([out], out / "compare.png", metric)


def write_all(study: optuna.Study, space: Space, out: Path, metric: str, direction: str) -> None:
    write_tables(study, space, out, metric, direction)
    write_plots(study, out, metric)
    write_comparison(out, monitor_for(metric))  # the logged series behind the metric
