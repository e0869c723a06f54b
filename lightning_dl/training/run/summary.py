"""summary.json (status running, completed, failed or interrupted; a run killed outright stays
``running``) and the end-of-run table; ``wall_time_s`` is the whole run's, via checkpoints."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from data_modules.io.atomic import write_json_atomic

# The figures printed at the end of a run and tabulated by sweeps, in that order.
REPORTED_METRICS = (
    "best_val/acc",
    "val/acc",
    "val/loss",
    "test/acc",
    "test/loss",
    "global_step",
    "wall_time_s",
    "best_val/dist",  # CTC: mean Levenshtein distance
    "val/dist",
    "test/dist",
)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class RunClock(Callback):
    """Carries the run's wall time in its checkpoints, so a resumed run reports the whole run's."""

    def __init__(self) -> None:
        self.started, self.carried = time.perf_counter(), 0.0

    def state_dict(self) -> dict[str, float]:
        return {"wall_time_s": self.carried + time.perf_counter() - self.started}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # not the best checkpoint that is tested
            state = checkpoint["callbacks"].get(self.state_key, {})
            self.carried = float(state.get("wall_time_s", 0))


def _progress(trainer: pl.Trainer, segment_s: float) -> dict[str, Any]:
    whole = segment_s + sum(cb.carried for cb in trainer.callbacks if isinstance(cb, RunClock))
    return {
        "global_step": trainer.global_step,
        "epochs": trainer.current_epoch,
        "wall_time_s": round(whole, 2),
        "segment_wall_time_s": round(segment_s, 2),  # this process's
    }


def collect_summary(
    trainer: pl.Trainer, metrics: dict[str, Any], wall_time_s: float
) -> dict[str, Any]:
    """Final figures: the best monitored value and its checkpoint, and the given metrics."""
    checkpoint = trainer.checkpoint_callback
    summary = {**_progress(trainer, wall_time_s), "precision": str(trainer.precision)}
    if checkpoint is not None and getattr(checkpoint, "best_model_path", ""):
        summary[f"best_{checkpoint.monitor or 'val/acc'}"] = _number(checkpoint.best_model_score)
        summary["best_checkpoint"] = checkpoint.best_model_path
    return summary | {k: _number(v) for k, v in metrics.items()}


def held_out_voices(datamodule: Any) -> dict[str, Any]:
    """Each split's voices and the split test/acc is on, for a DataModule that knows them."""
    voices = getattr(datamodule, "voices", None)
    try:
        report = voices() if callable(voices) else None
    except (OSError, ValueError, KeyError) as error:  # a side figure: never fail a finished run
        rank_zero_warn(f"the voices of each split could not be read: {error}")
        return {}
    if not report:
        return {}
    return {"voices": report, "tested_split": getattr(datamodule, "_test_split", lambda: "test")()}


def _voice_lines(report: dict, tested_split: str) -> list[str]:
    """The final table's lines on each split's voices, and on those test/acc is on."""
    line = f"voices: train {report['train']['voices']}"
    for split in ("dev", "test"):
        if split in report:
            seen = report[split]["in_train"]
            held_out = "all held out" if seen == 0 else f"{seen} also in training"
            line += f"; {split} {report[split]['voices']} ({held_out})"
    if (tested := report.get(tested_split)) is None:
        return [line]
    kind = "voices not heard in training" if tested["in_train"] == 0 else "some training voices"
    if tested["in_train"] == tested["voices"]:
        kind = "training voices only"
    return [line, f"test/acc is on the {tested_split} split: {kind}"]


def write_status(run_dir: Path, status: str, **details: Any) -> None:
    write_json_atomic(run_dir / "summary.json", {"status": status, **details})


def failure_report(trainer: pl.Trainer, error: BaseException, wall_time_s: float) -> dict[str, Any]:
    """What a failed run's summary.json says: error, where it happened, what is left on disk."""
    checkpoint = trainer.checkpoint_callback
    last = Path(checkpoint.dirpath or "", "last.ckpt") if checkpoint is not None else None
    return {
        "status": "interrupted" if isinstance(error, KeyboardInterrupt | SystemExit) else "failed",
        "error": f"{type(error).__name__}: {error}",
        **_progress(trainer, wall_time_s),
        "last_checkpoint": str(last) if last is not None and last.is_file() else None,
    }


def other_rank_errors(run_dir: Path, since: float) -> dict[str, str]:
    """Errors other ranks recorded in ``run_dir/errors/`` since ``since`` (the original error)."""
    errors = {}
    for path in sorted((run_dir / "errors").glob("rank*.json")):
        try:
            if path.stat().st_mtime >= since:
                errors[path.stem] = json.loads(path.read_text())["error"]
        except (OSError, ValueError, KeyError):
            continue  # a report being written or damaged: the summary does without it
    return errors


def finish_run(run_dir: Path, summary: dict[str, Any], wandb_dirs: list[Path]) -> str:
    """Write summary.json into ``run_dir``; return the table to print."""
    write_json_atomic(run_dir / "summary.json", summary)
    lines = ["", f"{'metric':<16}{'value':>12}", "-" * 28]
    for key in (k for k in REPORTED_METRICS if summary.get(k) is not None):
        value = f"{summary[key]:.4f}" if isinstance(summary[key], float) else summary[key]
        lines.append(f"{key:<16}{value:>12}")
    if summary.get("voices"):
        lines += _voice_lines(summary["voices"], summary.get("tested_split", "test"))
    lines.append(f"precision: {summary.get('precision')}")
    if summary.get("tested_checkpoint"):
        lines.append(f"tested: {summary['tested_checkpoint']}")
    lines.append(f"run directory: {run_dir}")
    lines += [f"wandb (offline): sync with `wandb sync {folder}`" for folder in wandb_dirs]
    return "\n".join(lines)
