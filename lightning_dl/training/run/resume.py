"""Find what a run can be resumed from: its status, its last checkpoint, its wandb run id."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

LAST = Path("checkpoints") / "last.ckpt"
COMPLETED = "completed"
_WANDB_RUN = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-(?P<id>[a-z0-9]+)$")


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``summary.json``; empty if there is none yet (or it is unreadable)."""
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def run_status(run_dir: str | Path) -> str | None:
    """``summary.json``'s status (running / failed / completed), None if there is none yet."""
    return read_summary(run_dir).get("status")


def is_finished(run_dir: str | Path) -> bool:
    return run_status(run_dir) == COMPLETED


def last_checkpoint(run_dir: str | Path) -> Path | None:
    path = Path(run_dir) / LAST
    return path if path.is_file() else None


def newest_unfinished_run(parent: str | Path) -> Path | None:
    """The unfinished run under ``parent`` (``<run.root>/<run.name>``) whose last.ckpt is newest."""
    parent = Path(parent)
    if not parent.is_dir():
        return None
    candidates = [
        d
        for d in parent.iterdir()
        if d.is_dir() and not d.is_symlink() and last_checkpoint(d) and not is_finished(d)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda d: (d / LAST).stat().st_mtime_ns)


def wandb_run_id(run_dir: str | Path) -> str | None:
    """Id of the newest wandb run stored in ``run_dir/wandb`` (``offline-run-<time>-<id>``)."""
    folder = Path(run_dir) / "wandb"
    if not folder.is_dir():
        return None
    runs = [
        (d.name.removeprefix("offline-"), m["id"])
        for d in folder.iterdir()
        if (m := _WANDB_RUN.match(d.name))
    ]
    return max(runs)[1] if runs else None
