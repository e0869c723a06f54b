"""Runs side by side: ``python -m lightning_dl.compare RUN_DIR... [--metric M] [--out F.png]``.

One figure of the runs' train/val curves, labelled by the settings that differ, and a table of
their final and best metrics (``compare.md``, and stdout). A folder of runs stands for its runs."""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from data_modules.errors import InputFileNotFoundError, UserInputError, run_main
from data_modules.io.atomic import atomic_path, write_text_atomic
from lightning_dl.training.run.directory import read_summary

LOWER_IS_BETTER = ("loss", "dist")  # dist: the mean Levenshtein distance of sequence tasks
# Config keys that differ between any two runs without being a setting of the experiment.
NOT_SETTINGS = ("run", "ckpt_path", "config", "checkpoint.dirpath", "trainer.default_root_dir",
                "trainer.logger")  # fmt: skip
# Callbacks a tool adds to each run for itself (the sweep's trial reporter).
TOOL_CALLBACKS = ("lightning_dl.training.callbacks.optuna_pruning.OptunaPruning",)


@dataclass
class Run:
    path: Path
    series: dict[str, list[tuple[int, float]]]
    settings: dict[str, Any]
    summary: dict[str, Any]
    label: str = ""


def flow(value: Any) -> str:
    """``value`` as one line of YAML flow style, as a command line or a label writes it."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6)
    return text.strip().removesuffix("...").strip()


def cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value)


def markdown(intro: str, columns: list[str], rows: list[list[str]]) -> str:
    lines = [intro, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list) and any(isinstance(v, dict) for v in node):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {prefix: node}
    named = ((f"{prefix}.{key}" if prefix else str(key), value) for key, value in items)
    return {k: v for key, value in named for k, v in _flatten(value, key).items()}


def read_settings(config_yaml: Path) -> dict[str, Any]:
    """The run's resolved config as {dotted key: value}, without run bookkeeping."""
    try:
        config = yaml.safe_load(config_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    callbacks = (config.get("trainer") or {}).get("callbacks")
    if isinstance(callbacks, list):
        tool = [
            c for c in callbacks if isinstance(c, dict) and c.get("class_path") in TOOL_CALLBACKS
        ]
        config["trainer"]["callbacks"] = [c for c in callbacks if c not in tool] or None
    flat = _flatten(config).items()
    return {k: v for k, v in flat if not any(k == s or k.startswith(s + ".") for s in NOT_SETTINGS)}


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Column name -> [(step, value)] for every non-empty cell of a CSVLogger file."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in ("", None):
                    series.setdefault(key, []).append((step, float(value)))
    return series


def panels(keys: Any) -> tuple[tuple[str, str], tuple[str, str]]:
    """(train, val) loss, then accuracy, or the distance where only that is logged (CTC)."""
    second = "dist" if "val/dist" in keys and "val/acc" not in keys else "acc"
    return ("train/loss", "val/loss"), (f"train/{second}", f"val/{second}")


def is_run(path: Path) -> bool:
    return (path / "metrics.csv").is_file() or (path / "config.yaml").is_file()


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Runs, or the runs in folders (a sweep's, ``runs/<name>/``) that have a metrics.csv yet."""
    found: list[Path] = []
    for given in map(Path, paths):
        if not given.is_dir():
            raise InputFileNotFoundError(f"{given}: no such run directory")
        if is_run(given) and not (given / "metrics.csv").is_file():
            raise UserInputError(
                f"{given}: run directory without metrics.csv (it logged nothing yet, or was "
                "trained with --trainer.logger false)"
            )
        parent = given / "runs" if (given / "runs").is_dir() else given
        inside = sorted(d for d in parent.iterdir() if d.is_dir() and not d.is_symlink())
        children = [given] if is_run(given) else [d for d in inside if is_run(d)]
        if not children:
            raise UserInputError(
                f"{given}: not a run directory (no metrics.csv or config.yaml) and holds no runs"
            )
        found += [d for d in children if (d / "metrics.csv").is_file()]
    if not found:
        raise UserInputError(f"{', '.join(map(str, paths))}: no run has a metrics.csv yet")
    return list(dict.fromkeys(found))


def load_runs(run_dirs: list[Path]) -> list[Run]:
    """The runs, labelled; steps as the console and Optuna count them (metrics.csv: one less)."""
    runs = []
    for run_dir in run_dirs:
        logged = read_metrics(run_dir / "metrics.csv")
        if not any(key in logged for panel in panels(logged) for key in panel):
            keys = ", ".join(k for panel in panels(logged) for k in panel)
            raise UserInputError(f"{run_dir / 'metrics.csv'}: none of {keys} is logged in it")
        series = {
            key: points if key.startswith("test/") else [(s + 1, v) for s, v in points]
            for key, points in logged.items()
        }
        settings = read_settings(run_dir / "config.yaml")
        runs.append(Run(run_dir, series, settings, read_summary(run_dir)))
    label_runs(runs)
    return runs


def short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest distinct tail, without init_args (a class_path: its owner's)."""
    parts = {k: [p for p in k.split(".") if p not in ("init_args", "class_path")] for k in keys}
    names = {}
    for key, words in parts.items():
        for n in range(1, len(words) + 1):
            tail = ".".join(words[-n:])
            if all(".".join(w[-n:]) != tail for other, w in parts.items() if other != key):
                break
        names[key] = tail if words else key
    return names


def _text(key: str, value: Any) -> str:
    if key.endswith("class_path") and isinstance(value, str):
        return value.rsplit(".", 1)[-1]
    return f"{value:.4g}" if isinstance(value, float) else flow(value)


def label_runs(runs: list[Run]) -> None:
    keys = sorted({k for r in runs for k in r.settings})
    differ = [k for k in keys if len({repr(r.settings.get(k)) for r in runs}) > 1]
    names = short_names(differ)
    for run in runs:
        run.label = ", ".join(f"{names[k]}={_text(k, run.settings.get(k))}" for k in differ)
    labels = [r.label for r in runs]
    for run in runs:
        if not run.label or labels.count(run.label) > 1:
            run.label = f"{run.label} ({run.path.name})" if run.label else run.path.name


def _finite(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return [p for p in points if math.isfinite(p[1])]


def comparison_figure(runs: list[Run], title: str = ""):  # -> matplotlib.figure.Figure
    """2 x 2 panels (train/val x loss/acc); one colour per run, labelled by its settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    shown = panels({key for run in runs for key in run.series})
    for row, panel in zip(axes, shown, strict=True):
        for ax, key in zip(row, panel, strict=True):
            for i, run in enumerate(runs):
                if points := run.series.get(key):
                    steps, values = zip(*points, strict=True)
                    ax.plot(steps, values, "-" if key.startswith("train/") else "o-",
                            color=colours(i % colours.N), label=run.label, markersize=3,
                            linewidth=1.2)  # fmt: skip
            ax.set(title=key, xlabel="step")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][1].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(runs)), fontsize=8,
               frameon=False)  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout(rect=(0, min(0.4, 0.035 * math.ceil(len(runs) / 3) + 0.02), 1, 1))
    return fig


def comparison_table(runs: list[Run], metric: str = "val/acc") -> str:
    """Markdown: final train/val curves' values, the best ``metric`` and its step, test figures."""
    sign = 1 if any(word in metric for word in LOWER_IS_BETTER) else -1  # sorted best first
    shown = panels({key for run in runs for key in run.series})
    test = shown[1][1].replace("val/", "test/")
    rows = []
    for run in runs:
        points = _finite(run.series.get(metric, []))
        best = min(points, key=lambda p: sign * p[1]) if points else None
        steps = run.summary.get("global_step")
        if not isinstance(steps, int):
            steps = max((p[0] for points in run.series.values() for p in points), default=None)
        cells = [run.label, cell(steps)]
        last = [_finite(run.series.get(key, [])) for panel in shown for key in panel]
        cells += [cell(points[-1][1]) if points else "" for points in last]
        cells += [cell(best[1]) if best else "", cell(best[0]) if best else ""]
        cells += [cell(run.summary.get(test)), cell(run.summary.get("test/loss"))]
        rows.append((sign * best[1] if best else math.inf, cells))
    columns = ["run", "steps", *(key for panel in shown for key in panel),
               f"best {metric}", "at step", test, "test/loss"]  # fmt: skip
    intro = f"Final values (last logged) and best `{metric}`; sorted by it."
    return markdown(intro, columns, [c for _, c in sorted(rows, key=lambda r: r[0])])


def plot_run(run_dir: Path) -> None:
    """curves.png: the run's own figure (none before it logs a loss or metric)."""
    if (run_dir / "metrics.csv").is_file():
        with contextlib.suppress(UserInputError):
            figure = comparison_figure(load_runs([run_dir]), title=str(run_dir))
            save_figure(figure, run_dir / "curves.png")


def write_comparison(
    paths: list[str | Path],
    out: str | Path = "compare.png",
    metric: str | None = None,
    title: str | None = None,
) -> tuple[Path, Path, str]:
    """The figure at ``out`` and the table beside it (.md); returns both paths and the table."""
    runs = load_runs(find_runs(paths))
    metric = metric or panels({key for run in runs for key in run.series})[1][1]
    if not any(metric in run.series for run in runs):
        logged = sorted({key for run in runs for key in run.series})
        raise UserInputError(f"--metric {metric}: no run logs it (logged: {', '.join(logged)})")
    out, table = Path(out), comparison_table(runs, metric)
    save_figure(comparison_figure(runs, title=title or f"{len(runs)} runs"), out)
    write_text_atomic(out.with_suffix(".md"), table)
    return out, out.with_suffix(".md"), table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_dl.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("runs", nargs="+", metavar="RUN_DIR", help="run directories or folders")
    add("--metric", help="logged metric to rank runs by (default: val/acc or val/dist)")
    add("--out", default="compare.png", help="figure path (table: same .md)")
    add("--title", help="figure title (default: the number of runs)")
    args = parser.parse_args(argv)
    png, md, table = write_comparison(args.runs, args.out, args.metric, args.title)
    print(f"{table}\nfigure: {png}\ntable: {md}")
    return 0


if __name__ == "__main__":
    run_main(main)
