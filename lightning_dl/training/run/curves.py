"""Training curves (loss and accuracy against steps) from a Lightning ``metrics.csv``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from data_modules.io.atomic import atomic_path


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Column name -> [(step, value)] for every non-empty cell of a CSVLogger file."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


def plot_curves(metrics_csv: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Two panels, loss and accuracy (or, for CTC runs, the mean edit distance ``dist``), each
    with the train and val series that exist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_metrics(metrics_csv)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    second = "dist" if "val/dist" in series and "val/acc" not in series else "acc"
    for ax, metric in zip(axes, ("loss", second), strict=True):
        for stage, style in (("train", "-"), ("val", "o-")):
            points = [p for p in series.get(f"{stage}/{metric}", []) if math.isfinite(p[1])]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, style, label=stage, markersize=3, linewidth=1)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(out_png)
