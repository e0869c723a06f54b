"""``python -m lightning_dl.fit --config configs/X.yaml``: train, test the best checkpoint, report.

Any config key can be overridden on the command line (``--trainer.max_steps 100``,
``--model.lr 1e-3``); several ``--config`` files merge left to right; ``--print_config`` prints
the resolved config and exits.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytorch_lightning.loggers import WandbLogger

from lightning_dl.atomic import point_symlink
from lightning_dl.cli import LightningDLCLI
from lightning_dl.run_summary import collect_summary, finish_run


def main(args: list[str] | None = None) -> dict:
    """Run one experiment; returns the summary (also written to the run directory)."""
    os.environ.setdefault("WANDB_MODE", "offline")  # tracking works with no server unless asked
    started = time.perf_counter()
    cli = LightningDLCLI(args=args)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    trainer.fit(model, datamodule=datamodule, ckpt_path=cli.config.get("ckpt_path"))
    val_metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    checkpoint = trainer.checkpoint_callback
    best = "best" if checkpoint is not None and getattr(checkpoint, "best_model_path", "") else None
    results = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
    test_metrics = results[0] if results else {}
    summary = collect_summary(trainer, val_metrics | test_metrics, time.perf_counter() - started)
    if trainer.is_global_zero:
        run_dir = Path(cli.config.run.dir)
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        wandb_dirs = [Path(lg.experiment.dir).parent for lg in wandb_loggers]
        for logger in wandb_loggers:
            logger.experiment.summary.update(summary)
            logger.experiment.finish()  # close the run so the next one in this process is new
        point_symlink(run_dir.parent / "latest", run_dir.name)  # runs/<name>/latest -> newest
        print(finish_run(run_dir, summary, wandb_dirs))
    return summary


if __name__ == "__main__":
    main()
