"""``python -m lightning_dl.fit --config configs/X.yaml``: train, test the best checkpoint, report.

Any key can be overridden (``--trainer.max_steps 100``); ``--config`` files merge left to right.
Exit status: 0 completed, 1 failed, 2 bad input (one ``error:`` line; the traceback with
``LIGHTNING_DL_DEBUG=1``), 143 terminated by SIGTERM.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from data_modules.errors import ReportedError, run_main
from data_modules.io.atomic import write_json_atomic
from lightning_dl import compare
from lightning_dl.training.cli import LightningDLCLI
from lightning_dl.training.config_errors import check_config_files
from lightning_dl.training.console import silence_harmless_notices
from lightning_dl.training.run import directory, signals
from lightning_dl.training.run.summary import (
    collect_summary,
    failure_report,
    finish_run,
    held_out_voices,
    other_rank_errors,
    write_status,
)


def main(args: list[str] | None = None) -> dict:
    """Run one experiment; returns the summary (also in the run directory's summary.json).

    On an exception summary.json says what failed (other ranks: ``errors/rank<N>.json``, repeated
    under ``other_ranks``), the wandb run is closed as failed, and the exception propagates.
    """
    os.environ.setdefault("WANDB_MODE", "offline")  # tracking works with no server unless asked
    silence_harmless_notices()
    started, started_at = time.perf_counter(), time.time()
    check_config_files(sys.argv[1:] if args is None else args)
    cli = LightningDLCLI(args=args)
    trainer = cli.trainer
    run_dir = Path(cli.config.run.dir)
    ckpt_path = cli.config.get("ckpt_path")
    if directory.decides_run_directory():
        for stale in directory.remove_stale_temp_files(run_dir):
            rank_zero_info(f"removed {stale}, a temp file left by a killed run")
        write_status(run_dir, "running", resumed_from=ckpt_path)
    try:
        summary = _fit_and_test(cli, ckpt_path, started)
    except BaseException as error:
        requeued = {}
        if signals.requeue_asked(trainer) and trainer.is_global_zero:  # last.ckpt is written
            requeued["requeue"] = signals.requeue_slurm_job()
            print(requeued["requeue"])
        _report_failure(
            trainer, run_dir, error, time.perf_counter() - started, started_at, **requeued
        )
        if (status := signals.exit_status(error, trainer)) is not None:
            raise SystemExit(status) from error
        lost = directory.lost_connection(error, trainer.global_rank, str(run_dir))
        if lost is not None:
            raise lost from error
        raise
    if trainer.is_global_zero:
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        wandb_dirs = [Path(lg.experiment.dir).parent for lg in wandb_loggers]
        for logger in wandb_loggers:
            logger.experiment.summary.update(summary)
            logger.experiment.finish()  # close the run so the next one in this process is new
        if cli.named_run_dir:
            directory.point_latest(run_dir)  # runs/<name>/latest -> newest
        print(finish_run(run_dir, summary, wandb_dirs))
        compare.plot_run(run_dir)
    return summary


def _fit_and_test(cli: LightningDLCLI, ckpt_path: str | None, started: float) -> dict:
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    val_metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    averaging = _drop_weight_averaging(trainer)
    with warnings.catch_warnings():
        if averaging:  # Lightning asks for the dropped callback back; testing needs none
            warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint")
        results = trainer.test(
            model, datamodule=datamodule, ckpt_path="best" if best else None, verbose=False
        )
    test_metrics = results[0] if results else {}
    summary = collect_summary(trainer, val_metrics | test_metrics, time.perf_counter() - started)
    summary.update(held_out_voices(datamodule))
    tested = best or "the final weights (no validation ran, so there is no best checkpoint)"
    return {"status": "completed", **summary, "tested_checkpoint": tested}


def _drop_weight_averaging(trainer: pl.Trainer) -> bool:
    """Remove an EMA/SWA callback before testing (True if there was one): still attached, it
    would load the checkpoint's raw weights (``current_model_state``) instead of the averaged
    ones that validation saw and chose as best (Lightning 2.6)."""
    kept = [cb for cb in trainer.callbacks if not isinstance(cb, WeightAveraging)]
    dropped = len(kept) != len(trainer.callbacks)
    trainer.callbacks = kept
    return dropped


def _report_failure(
    trainer: pl.Trainer,
    run_dir: Path,
    error: BaseException,
    wall_time_s: float,
    since: float,
    **details: str,
) -> None:
    """Leave a truthful run directory behind; never mask the original error."""
    report = failure_report(trainer, error, wall_time_s) | details
    try:
        if trainer.global_rank != 0:
            if signals.is_termination(error) or isinstance(error, torch.distributed.DistError):
                return  # stopped as agreed, or lost its peers: rank 0 or the first to stop says
            write_json_atomic(run_dir / "errors" / f"rank{trainer.global_rank}.json", report)
            return
        other_ranks = other_rank_errors(run_dir, since)
        if other_ranks:
            report["other_ranks"] = other_ranks
        for logger in trainer.loggers:
            logger.save()  # metrics logged up to the failure reach metrics.csv
        write_status(run_dir, report.pop("status"), **report)
        compare.plot_run(run_dir)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and logger._experiment is not None:
                logger.experiment.summary.update({"status": "failed", "error": report["error"]})
                logger.experiment.finish(exit_code=1)
        if signals.is_termination(error):
            left = report["last_checkpoint"] or "no checkpoint"
            print(
                f"run interrupted after step {report['global_step']} ({left}); the same "
                f"command with --run.auto_resume true continues it\nrun directory: {run_dir}"
            )
        elif not isinstance(error, ReportedError):  # those get their one line from run_main
            print(f"run failed: {report['error']}\nrun directory: {run_dir}")
        for rank, message in other_ranks.items():
            print(f"  {rank} failed too: {message}")
    except Exception as secondary:  # the original error matters more
        print(f"(could not record the failure in {run_dir}: {secondary!r})")


if __name__ == "__main__":
    run_main(main)
