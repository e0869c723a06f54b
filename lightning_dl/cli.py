"""LightningCLI for lightning-dl: a run directory per run, CSV logs always, shapes from the data.

Run directory layout (``<run.root>/<run.name>/<timestamp>/`` unless ``--run.dir`` is given)::

    config.yaml          the fully resolved config (re-runnable with --config)
    checkpoints/         best.ckpt (by val/acc) and last.ckpt
    metrics.csv          CSVLogger output;  curves.png, summary.json written at the end
    wandb/               the wandb run (offline unless the config turns it on)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from jsonargparse import Namespace
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from lightning_dl.classifier import Classifier

RUN_DIR_ENV = "LIGHTNING_DL_RUN_DIR"  # lets DDP child processes reuse rank 0's run directory
CSV_LOGGER = "pytorch_lightning.loggers.CSVLogger"


class RunConfigSaver(SaveConfigCallback):
    """Writes config.yaml into the run directory and logs the full config to every logger once."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        as_dict = yaml.safe_load(self.parser.dump(self.config, skip_none=False, format="yaml"))
        for logger in trainer.loggers:
            logger.log_hyperparams(as_dict)


def _class_name(entry: Any) -> str:
    return str(entry.get("class_path", "")) if isinstance(entry, dict | Namespace) else ""


class LightningDLCLI(LightningCLI):
    """LightningCLI with run directories; see the module docstring."""

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(
            Classifier,
            pl.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=RunConfigSaver,
            run=False,
            args=args,
            auto_configure_optimizers=False,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments(
            "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
        )
        parser.link_arguments(
            "data.input_shape", "model.init_args.input_shape", apply_on="instantiate"
        )
        parser.add_argument(
            "--run.root", type=str, default="runs", help="Parent of run directories."
        )
        parser.add_argument(
            "--run.name", type=str | None, default=None, help="Default: config stem."
        )
        parser.add_argument("--run.dir", type=str | None, default=None, help="Exact run directory.")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.filename": "best",
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def before_instantiate_classes(self) -> None:
        config = self.config
        run_dir = self._resolve_run_dir(config)
        config.run.dir = str(run_dir)
        config.checkpoint.dirpath = str(run_dir / "checkpoints")
        config.trainer.default_root_dir = str(run_dir)
        config.trainer.logger = self._loggers_in(run_dir, config.trainer.logger)

    def _resolve_run_dir(self, config: Namespace) -> Path:
        if config.run.dir:
            run_dir = Path(config.run.dir)
            if (run_dir / "checkpoints").is_dir() and not config.get("ckpt_path"):
                raise ValueError(
                    f"run directory {run_dir} already holds a run (checkpoints/ exists); pass "
                    "--ckpt_path to continue it, or choose another --run.dir (or --run.dir null)"
                )
            return run_dir
        if os.environ.get(RUN_DIR_ENV):
            return Path(os.environ[RUN_DIR_ENV])
        name = config.run.name or self._config_stem(config)
        run_dir = Path(config.run.root) / name / time.strftime("%Y%m%d-%H%M%S")
        suffix = 1
        while run_dir.exists():  # two runs started in the same second get distinct folders
            run_dir = run_dir.with_name(f"{run_dir.name.split('_')[0]}_{suffix}")
            suffix += 1
        os.environ[RUN_DIR_ENV] = str(run_dir)
        return run_dir

    @staticmethod
    def _config_stem(config: Namespace) -> str:
        paths = config.get("config") or []
        last = paths[-1] if paths else None
        return (
            Path(str(last.relative if hasattr(last, "relative") else last)).stem if last else "run"
        )

    @staticmethod
    def _loggers_in(run_dir: Path, loggers: Any) -> Any:
        """Point every logger at ``run_dir``; a CSVLogger (metrics.csv) there always comes first."""
        if loggers is False:
            return False
        entries = (
            list(loggers)
            if isinstance(loggers, list)
            else ([] if loggers in (None, True) else [loggers])
        )
        csv_entries = [e for e in entries if _class_name(e).endswith("CSVLogger")]
        others = [e for e in entries if not _class_name(e).endswith("CSVLogger")]
        csv_entry = (
            csv_entries[0]
            if csv_entries
            else Namespace(class_path=CSV_LOGGER, init_args=Namespace())
        )
        csv_entry.init_args.save_dir = str(run_dir)
        csv_entry.init_args.name = ""
        csv_entry.init_args.version = ""
        for entry in others:
            if "save_dir" in entry.init_args or _class_name(entry).endswith("WandbLogger"):
                entry.init_args.save_dir = str(run_dir)
        return [csv_entry, *others]
