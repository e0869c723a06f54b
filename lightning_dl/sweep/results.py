"""A sweep's results, rewritten from the storage after each trial by whichever worker ran it:
results.csv and results.md (every counted trial, best first) and Optuna's plots."""

from __future__ import annotations

import csv
import functools
import warnings
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from data_modules.io.atomic import atomic_path, write_text_atomic
from lightning_dl import compare
from lightning_dl.sweep.space import Space, cli_value, short
from lightning_dl.sweep.trials import LOCK, counted, held, run_dir_of, trial_state
from lightning_dl.training.run.directory import read_summary
from lightning_dl.training.run.summary import REPORTED_METRICS as METRICS


def write_tables(study: optuna.Study, space: Space, out: Path, metric: str, direction: str) -> None:
    """results.csv and results.md, in one order: complete trials best first, then pruned ones
    (by their last reported value), then the rest; ties in the grid file's order."""
    with held(out / LOCK):  # no worker takes a trial's lock while it is tested here
        trials = [(t, trial_state(t, out)) for t in counted(study.get_trials())]
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
    shown = [m for m in METRICS[:5] if m != metric]
    rows = []
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["trial", "state", *keys, "value", *METRICS, "run_dir"])
        for trial, state in trials:
            run_dir = run_dir_of(trial) or ""
            summary = read_summary(out / run_dir) if run_dir else {}
            params = [trial.params.get(k, "") for k in keys]
            value = "" if trial.value is None else repr(trial.value)
            figures = [summary.get(m, "") for m in METRICS]
            texts = map(cli_value, params)
            writer.writerow([trial.number, state, *texts, value, *figures, run_dir])
            cells = [str(trial.number), *map(short, params), compare.cell(trial.value)]
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
    """Optuna's optimization history, parallel coordinates and (from 2 distinct points) parameter
    importances of the complete trials (its plots leave pruned ones out), in a local style."""
    import matplotlib
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    names = sorted({k for t in complete for k in t.params})
    draw = {
        "optimization_history": plots.plot_optimization_history,
        "parallel_coordinate": functools.partial(plots.plot_parallel_coordinate, params=names),
    }
    if len({tuple(sorted((k, repr(v)) for k, v in t.params.items())) for t in complete}) >= 2:
        draw["param_importances"] = plots.plot_param_importances
    matplotlib.use("Agg")
    for name, plot in draw.items():
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # a parameter with one value so far gets a flat axis: harmless
            warnings.filterwarnings("ignore", message="Attempting to set identical low and high")
            # trials with equal values: Optuna's importance evaluator says so, and plots equal bars
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
    """The line that says where a sweep's results are."""
    files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    return f"[sweep] results in {out}/: {', '.join(files)}"
