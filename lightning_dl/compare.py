"""Runs side by side: ``python -m lightning_dl.compare RUN_DIR... [--metric M] [--out F.png]``.

Overlays the train and val loss and accuracy (from each run's ``metrics.csv``) of every run in
one figure, each run labelled by the settings that differ between the runs (read from their
``config.yaml``), and writes a Markdown table of the final and best metrics next to the figure
(``compare.md``), also printed. A folder that holds runs (a sweep folder, or ``runs/<name>/``)
stands for all the runs in it.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_modules.errors import InputFileNotFoundError, UserInputError, run_main
from data_modules.io.atomic import atomic_path, write_text_atomic
from lightning_dl.training.run.directory import read_summary
from lightning_dl.training.run.summary import read_metrics

PANELS = (("train/loss", "val/loss"), ("train/acc", "val/acc"))
# Config keys that differ between any two runs without being a setting of the experiment.
NOT_SETTINGS = ("run", "ckpt_path", "config", "checkpoint.dirpath", "trainer.default_root_dir",
                "trainer.logger")  # fmt: skip
# Callbacks a tool adds to each run for itself (the sweep's trial reporter).
TOOL_CALLBACKS = ("lightning_dl.training.callbacks.optuna_pruning.OptunaPruning",)


@dataclass
class Run:
    """One run directory: its logged series, its settings (flattened config) and summary."""

    path: Path
    series: dict[str, list[tuple[int, float]]]
    settings: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    label: str = ""


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list) and any(isinstance(v, dict) for v in node):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def read_settings(config_yaml: Path) -> dict[str, Any]:
    """The run's resolved config as {dotted key: value}, without run bookkeeping."""
    try:
        config = yaml.safe_load(config_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    callbacks = (config.get("trainer") or {}).get("callbacks")
    if isinstance(callbacks, list):
        config["trainer"]["callbacks"] = [
            c
            for c in callbacks
            if not (isinstance(c, dict) and c.get("class_path") in TOOL_CALLBACKS)
        ] or None
    return {
        key: value
        for key, value in _flatten(config).items()
        if not any(key == skip or key.startswith(skip + ".") for skip in NOT_SETTINGS)
    }


def is_run(path: Path) -> bool:
    return (path / "metrics.csv").is_file() or (path / "config.yaml").is_file()


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories named by ``paths``: runs themselves, or folders of runs (a sweep folder's
    ``runs/``, ``runs/<name>/``); runs in a folder that have no metrics.csv yet are left out."""
    found: list[Path] = []
    for given in map(Path, paths):
        if not given.is_dir():
            raise InputFileNotFoundError(f"{given}: no such run directory")
        if is_run(given):
            if not (given / "metrics.csv").is_file():
                raise UserInputError(
                    f"{given}: run directory without metrics.csv (it logged nothing yet, or was "
                    "trained with --trainer.logger false)"
                )
            found.append(given)
            continue
        parent = given / "runs" if (given / "runs").is_dir() else given
        children = sorted(
            d for d in parent.iterdir() if d.is_dir() and not d.is_symlink() and is_run(d)
        )
        if not children:
            raise UserInputError(
                f"{given}: not a run directory (no metrics.csv or config.yaml) and holds no runs"
            )
        found += [d for d in children if (d / "metrics.csv").is_file()]
    if not found:
        raise UserInputError(f"{', '.join(map(str, paths))}: no run has a metrics.csv yet")
    return list(dict.fromkeys(found))


def load_runs(run_dirs: list[Path]) -> list[Run]:
    runs = []
    for run_dir in run_dirs:
        series = read_metrics(run_dir / "metrics.csv")
        if not any(key in series for panel in PANELS for key in panel):
            raise UserInputError(
                f"{run_dir / 'metrics.csv'}: none of train/loss, val/loss, train/acc, val/acc "
                "is logged in it"
            )
        settings = read_settings(run_dir / "config.yaml")
        runs.append(Run(run_dir, series, settings, read_summary(run_dir)))
    label_runs(runs)
    return runs


def short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest distinct tail, without ``init_args``: ``model.init_args.
    backbone.init_args.hidden`` -> ``hidden``; a ``class_path`` is named after its owner."""
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
    if isinstance(value, float):
        return f"{value:.4g}"
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6)
        .strip()
        .removesuffix("...")
        .strip()
    )


def label_runs(runs: list[Run]) -> None:
    """Label every run by the settings whose values differ between the runs."""
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


def _best(points: list[tuple[int, float]], metric: str) -> tuple[int, float] | None:
    points = _finite(points)
    if not points:
        return None
    pick = min if "loss" in metric else max
    return pick(points, key=lambda p: p[1])


def comparison_figure(runs: list[Run], title: str = ""):  # -> matplotlib.figure.Figure
    """2 x 2 panels (train/val x loss/acc); one colour per run, labelled by its settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    for row, panel in zip(axes, PANELS, strict=True):
        for ax, key in zip(row, panel, strict=True):
            for i, run in enumerate(runs):
                points = run.series.get(key, [])
                if points:
                    steps, values = zip(*points, strict=True)
                    style = "-" if key.startswith("train/") else "o-"
                    ax.plot(steps, values, style, color=colours(i % colours.N), label=run.label,
                            markersize=3, linewidth=1.2)  # fmt: skip
            ax.set_title(key)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][1].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(runs)), fontsize=8,
               frameon=False)  # fmt: skip
    fig.suptitle(title)
    rows = math.ceil(len(runs) / 3)
    fig.tight_layout(rect=(0, min(0.4, 0.035 * rows + 0.02), 1, 1))
    return fig


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def comparison_table(runs: list[Run], metric: str = "val/acc") -> str:
    """Markdown: final train/val loss and accuracy, best ``metric`` and its step, test figures."""
    rows = []
    for run in runs:
        final = {key: _finite(run.series.get(key, []))[-1:] for panel in PANELS for key in panel}
        best = _best(run.series.get(metric, []), metric)
        steps = run.summary.get("global_step")
        if not isinstance(steps, int):
            steps = max((p[0] for points in run.series.values() for p in points), default=None)
        rows.append((run, final, best, steps))
    worst = math.inf if "loss" in metric else -math.inf
    rows.sort(key=lambda r: (r[2][1] if r[2] else worst) * (1 if "loss" in metric else -1))
    columns = ["run", "steps", "train/loss", "val/loss", "train/acc", "val/acc",
               f"best {metric}", "at step", "test/acc", "test/loss"]  # fmt: skip
    lines = [
        f"Final values (last logged) and best `{metric}`; sorted by it.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for run, final, best, steps in rows:
        cells = [run.label, _cell(steps)]
        cells += [_cell(final[k][0][1]) if final[k] else "" for k in columns[2:6]]
        cells += [_cell(best[1]) if best else "", _cell(best[0]) if best else ""]
        cells += [_cell(run.summary.get("test/acc")), _cell(run.summary.get("test/loss"))]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(
    paths: list[str | Path],
    out: str | Path = "compare.png",
    metric: str = "val/acc",
    title: str | None = None,
) -> tuple[Path, Path, str]:
    """Figure at ``out`` and table at ``out`` with ``.md``; returns both paths and the table."""
    runs = load_runs(find_runs(paths))
    if not any(metric in run.series for run in runs):
        logged = sorted({key for run in runs for key in run.series})
        raise UserInputError(f"--metric {metric}: no run logs it (logged: {', '.join(logged)})")
    out = Path(out)
    table = comparison_table(runs, metric)
    fig = comparison_figure(runs, title=title or f"{len(runs)} runs")
    import matplotlib.pyplot as plt

    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    write_text_atomic(out.with_suffix(".md"), table)
    return out, out.with_suffix(".md"), table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_dl.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or folders")
    parser.add_argument("--metric", default="val/acc", help="logged metric to rank runs by")
    parser.add_argument("--out", default="compare.png", help="figure path (table: same .md)")
    parser.add_argument("--title", help="figure title (default: the number of runs)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    png, md, table = write_comparison(args.runs, args.out, args.metric, args.title)
    print(table)
    print(f"figure: {png}\ntable: {md}")
    return 0


if __name__ == "__main__":
    run_main(main)
