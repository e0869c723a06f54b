"""A sweep's results, rewritten from the storage after each trial by whichever worker ran it:
results.csv and results.md (every counted trial, best first) and Optuna's plots."""

from __future__ import annotations

import csv
import functools
import warnings
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from data_modules.io.atomic import atomic_path, write_text_atomic
from lightning_dl import compare
from lightning_dl.sweep.space import Space, cli_value, short
from lightning_dl.sweep.trials import LOCK, counted, held, run_dir_of, trial_state
from lightning_dl.training.run.directory import read_summary
from lightning_dl.training.run.summary import REPORTED_METRICS as METRICS


def write_tables(study: optuna.Study, space: Space, out: Path, metric: str, direction: str) -> None:
    """results.csv/.md: complete trials best first, then pruned (by last value), then the rest."""
    with held(out / LOCK):  # no worker takes a trial's lock while it is tested here
        trials = [(t, trial_state(t, out)) for t in counted(study.get_trials())]
    sign, rank = (-1 if direction == "maximize" else 1), {"complete": 0, "pruned": 1}

    def order(row: tuple[FrozenTrial, str]) -> tuple:
        t, state = row
        value = 0 if t.value is None else sign * t.value
        return rank.get(state, 2), value, space.grid_position(t.params), t.number

    trials.sort(key=order)
    keys = list(space.distributions)
    shown = [m for m in METRICS[:5] if m != metric]
    rows = []
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["trial", "state", *keys, "value", *METRICS, "run_dir"])
        for trial, state in trials:
            run_dir = run_dir_of(trial) or ""
            summary = read_summary(out / run_dir) if run_dir else {}
            point = [trial.params.get(k, "") for k in keys]
            value = "" if trial.value is None else repr(trial.value)
            figures = [summary.get(m, "") for m in METRICS]
            writer.writerow([trial.number, state, *map(cli_value, point), value, *figures, run_dir])
            cells = [str(trial.number), *map(short, point), compare.cell(trial.value)]
            cells += [compare.cell(summary.get(m)) for m in (*shown, "global_step")]
            rows.append([*cells, state])
    counts = ", ".join(f"{n} {state}" for state, n in Counter(s for _, s in trials).items())
    intro = (
        f"Sorted by `{metric}` ({direction}), as results.csv is; {len(trials)} trials: "
        f"{counts or 'none yet'}. A pruned trial's value is its last reported one."
    )
    columns = ["trial", *(k.split(".")[-1] for k in keys), metric, *shown, "steps", "state"]
    write_text_atomic(out / "results.md", compare.markdown(intro, columns, rows))


def write_plots(study: optuna.Study, out: Path, metric: str) -> None:
    """Optuna's plots of the complete trials (they leave pruned ones out); importances need 2."""
    import matplotlib
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    names = sorted({k for t in complete for k in t.params})
    draw = {"optimization_history": plots.plot_optimization_history}
    draw["parallel_coordinate"] = functools.partial(plots.plot_parallel_coordinate, params=names)
    if len({tuple(sorted((k, repr(v)) for k, v in t.params.items())) for t in complete}) >= 2:
        draw["param_importances"] = plots.plot_param_importances
    matplotlib.use("Agg")
    for name, plot in draw.items():
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # harmless: a flat axis (one value so far), equal importance bars (equal values)
            warnings.filterwarnings("ignore", message="Attempting to set identical low and high")
            warnings.filterwarnings("ignore", message="Target and region quantiles select the same")
            ax = plot(study, target_name=metric)
            if name == "parallel_coordinate" and len(ax.get_xticklabels()) == len(names) + 1:
                short_names = compare.short_names(names)  # Optuna cuts names at 20 characters
                ax.set_xticks(range(len(names) + 1), [metric, *(short_names[n] for n in names)])
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(9, 5.5)
            fig.tight_layout()
            compare.save_figure(fig, out / f"{name}.png")


def where(out: Path) -> str:
    files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    return f"[sweep] results in {out}/: {', '.join(files)}"
