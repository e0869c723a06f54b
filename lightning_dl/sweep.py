"""Grid sweeps: ``python -m lightning_dl.sweep --config base.yaml --grid grid.yaml``.

``grid.yaml`` maps dotted CLI keys to lists of values; every combination is one normal run
directory ``<out>/runs/<NNN>-<key=value,...>``, trained by ``python -m lightning_dl.fit`` in a
subprocess. Re-running the same command skips finished combinations and resumes unfinished
ones (``--run.auto_resume``), so a crashed sweep is continued by running it again. After every
run ``results.csv`` and ``results.md`` (sorted by ``--metric``) are rewritten atomically::

    model.backbone.init_args.hidden: [[64], [256], [1024]]
    model.lr: [0.001, 0.01]

Arguments after ``--`` go to every run unchanged (``-- --trainer.max_steps 500``).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lightning_dl.atomic import write_json_atomic, write_text_atomic
from lightning_dl.run.resume import is_finished, read_summary, run_status
from lightning_dl.run.summary import REPORTED_METRICS

METRICS = REPORTED_METRICS


@dataclass
class Combo:
    """One point of the grid and the run directory that holds it."""

    index: int
    values: dict[str, Any]
    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.name

    def overrides(self) -> list[str]:
        args: list[str] = []
        for key, value in self.values.items():
            args += [f"--{key}", _cli_value(value)]
        return args


def _cli_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6)
        .strip()
        .removesuffix("...")
        .strip()
    )


def _slug(values: dict[str, Any]) -> str:
    """``hidden=16-8,lr=0.1``: readable, shell-safe folder names."""
    parts = []
    for key, value in values.items():
        text = _cli_value(value).replace(", ", "-").replace(",", "-")
        parts.append(f"{key.split('.')[-1]}={text}")
    return re.sub(r"[^A-Za-z0-9._=,+-]+", "", ",".join(parts))[:120]


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """The grid file as {dotted key: non-empty list of values}; clear errors otherwise."""
    grid = yaml.safe_load(Path(path).read_text())
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{path}: expected a mapping of dotted keys to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(
                f"{path}: key '{key}' must map to a non-empty list of values, got {values!r}"
            )
    return grid


def expand(grid: dict[str, list[Any]], runs_dir: Path) -> list[Combo]:
    """Every combination, in the grid file's order (the last key varies fastest)."""
    keys = list(grid)
    combos = []
    for i, point in enumerate(itertools.product(*(grid[k] for k in keys))):
        values = dict(zip(keys, point, strict=True))
        combos.append(Combo(i, values, runs_dir / f"{i:03d}-{_slug(values)}"))
    return combos


def write_results(out: Path, combos: list[Combo], metric: str, mode: str) -> None:
    """results.csv (grid order) and results.md (sorted by ``metric``), both atomically."""
    keys = list(combos[0].values) if combos else []
    header = ["name", "status", *keys, *METRICS, "run_dir"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for c in combos:
        s = c.summary
        writer.writerow(
            [c.name, s.get("status", "pending"), *(_cli_value(c.values[k]) for k in keys),
             *(s.get(m, "") for m in METRICS), str(c.run_dir)]
        )  # fmt: skip
    write_text_atomic(out / "results.csv", buffer.getvalue())

    def sort_key(c: Combo) -> tuple[bool, float]:
        value = c.summary.get(metric)
        missing = not isinstance(value, int | float)
        return missing, 0.0 if missing else (-value if mode == "max" else value)

    columns = [*(k.split(".")[-1] for k in keys), *METRICS[:5], "status"]
    lines = [
        f"Sorted by `{metric}` ({mode}).",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for c in sorted(combos, key=sort_key):
        cells = [_cli_value(c.values[k]) for k in keys]
        cells += [_fmt(c.summary.get(m)) for m in METRICS[:5]]
        cells.append(c.summary.get("status", "pending"))
        lines.append("| " + " | ".join(cells) + " |")
    write_text_atomic(out / "results.md", "\n".join(lines) + "\n")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


def run_combo(combo: Combo, configs: list[str], extra: list[str], logs: Path) -> dict[str, Any]:
    """Train one combination (resuming it if it was interrupted); return its summary."""
    command = [sys.executable, "-m", "lightning_dl.fit"]
    for config in configs:
        command += ["--config", config]
    command += ["--run.dir", str(combo.run_dir), "--run.auto_resume", "true"]
    command += combo.overrides() + extra
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTNING_DL_")}
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{combo.name}.log", "a") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    summary = read_summary(combo.run_dir)
    if done.returncode != 0 and summary.get("status") in (None, "running", "completed"):
        summary = {"status": "failed", "error": f"exit code {done.returncode}, see {log.name}"}
    return summary


def run_sweep(
    configs: list[str],
    grid_path: str | Path,
    out: str | Path,
    *,
    metric: str = "best_val/acc",
    mode: str = "max",
    workers: int = 1,
    extra: list[str] | None = None,
) -> list[Combo]:
    """Run every unfinished combination of the grid; return all combinations with summaries."""
    out = Path(out)
    combos = expand(load_grid(grid_path), out / "runs")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        out / "sweep.json", {"configs": configs, "grid": load_grid(grid_path), "extra": extra or []}
    )
    todo = []
    for combo in combos:
        combo.summary = read_summary(combo.run_dir)
        if is_finished(combo.run_dir):
            print(f"[sweep] {combo.name}: finished, skipped")
        else:
            todo.append(combo)
    lock = threading.Lock()
    write_results(out, combos, metric, mode)

    def work(combo: Combo) -> None:
        state = run_status(combo.run_dir)
        print(f"[sweep] {combo.name}: {'resuming' if state else 'starting'}", flush=True)
        summary = run_combo(combo, configs, extra or [], out / "logs")
        with lock:
            combo.summary = summary
            write_results(out, combos, metric, mode)
            print(f"[sweep] {combo.name}: {summary.get('status')} {metric}={summary.get(metric)}")

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(work, todo))
    return combos


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="python -m lightning_dl.sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", action="append", required=True, help="base config(s)")
    parser.add_argument("--grid", required=True, help="YAML: dotted key -> list of values")
    parser.add_argument("--out", help="sweep folder (default: runs/sweeps/<grid file stem>)")
    parser.add_argument("--metric", default="best_val/acc", help="summary.json key to sort by")
    parser.add_argument("--mode", choices=("max", "min"), default="max")
    parser.add_argument("--workers", type=int, default=1, help="runs at the same time")
    args = parser.parse_args(argv)
    out = args.out or str(Path("runs") / "sweeps" / Path(args.grid).stem)
    combos = run_sweep(args.config, args.grid, out, metric=args.metric, mode=args.mode,
                       workers=args.workers, extra=extra)  # fmt: skip
    print((Path(out) / "results.md").read_text())
    failed = [c.name for c in combos if c.summary.get("status") != "completed"]
    if failed:
        print(f"[sweep] not completed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
