"""LightningCLI for lightning-dl: a run directory per run, CSV logs always, shapes from the data.

Run directory layout (``<run.root>/<run.name>/<timestamp>/`` unless ``--run.dir`` is given)::

    config.yaml          the fully resolved config (re-runnable with --config)
    checkpoints/         best.ckpt (by val/acc) and last.ckpt
    metrics.csv          CSVLogger output;  curves.png written at the end
    summary.json         status (running / failed / completed), error, final metrics
    wandb/               the wandb run (offline unless the config turns it on)

Resuming: ``--ckpt_path last --run.dir DIR`` continues DIR from DIR/checkpoints/last.ckpt;
``--run.auto_resume true`` does the same for the given ``--run.dir``, or else for the newest
unfinished run of the same name, and starts a new run when there is nothing to resume. The
wandb run of a resumed run is the same wandb run (same id, ``resume="allow"``).
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
from pytorch_lightning.plugins.io import TorchCheckpointIO

from lightning_dl import console, resume
from lightning_dl.callbacks.exact_resume import ExactResume
from lightning_dl.callbacks.nonfinite import NonFiniteLossGuard
from lightning_dl.callbacks.periodic_checkpoint import PeriodicCheckpoint
from lightning_dl.checkpoint_io import AtomicCheckpointIO
from lightning_dl.classifier import Classifier

RUN_DIR_ENV = "LIGHTNING_DL_RUN_DIR"  # lets DDP child processes reuse rank 0's run directory
CKPT_ENV = "LIGHTNING_DL_CKPT_PATH"  # ... and the checkpoint rank 0 resumes from
CSV_LOGGER = "lightning_dl.tracking.csv_logger.ResumableCSVLogger"


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
        parser.add_argument(
            "--run.auto_resume",
            type=bool,
            default=False,
            help="Continue --run.dir, or the newest unfinished run of this name, if resumable.",
        )
        parser.add_argument(
            "--run.checkpoint_every_n_steps",
            type=int | None,
            default=None,
            help="Also write checkpoints/last.ckpt every K optimizer steps.",
        )
        parser.add_argument(
            "--run.exact_resume",
            type=bool,
            default=True,
            help="Seeded, resumable data order and per-batch RNG seeds (callbacks.exact_resume).",
        )
        parser.add_argument(
            "--run.stop_on_nonfinite",
            type=bool,
            default=True,
            help="Stop at the first NaN/inf training loss, before the optimizer step.",
        )
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Checkpoint to continue from; 'last' = <run.dir>/checkpoints/last.ckpt.",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.filename": "best",
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.enable_version_counter": False,  # a resumed run updates its files
            }
        )

    def before_instantiate_classes(self) -> None:
        config = self.config
        if os.environ.get(RUN_DIR_ENV) and os.environ.get("LOCAL_RANK", "0") != "0":  # DDP child
            run_dir = Path(os.environ[RUN_DIR_ENV])
            config.ckpt_path = os.environ.get(CKPT_ENV) or None
        else:
            run_dir, config.ckpt_path = self._resolve_run_dir(config)
            os.environ[RUN_DIR_ENV] = str(run_dir)
            os.environ[CKPT_ENV] = config.ckpt_path or ""
        config.run.dir = str(run_dir)
        config.checkpoint.dirpath = str(run_dir / "checkpoints")
        config.trainer.default_root_dir = str(run_dir)
        config.trainer.logger = self._loggers_in(
            run_dir, config.trainer.logger, resuming=bool(config.ckpt_path)
        )
        self._configure_wandb(run_dir, config)

    def _resolve_run_dir(self, config: Namespace) -> tuple[Path, str | None]:
        """(run directory, checkpoint to resume from or None)."""
        ckpt_path = config.get("ckpt_path")
        if config.run.dir:
            run_dir = Path(config.run.dir)
        elif int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1) > 1:
            raise ValueError(
                "launched as one of several processes (WORLD_SIZE or SLURM_NTASKS > 1: torchrun "
                "or srun): pass --run.dir so that every process writes to the same run directory"
            )
        elif config.run.auto_resume and (
            found := resume.newest_unfinished_run(Path(config.run.root) / self._run_name(config))
        ):
            run_dir = found
        else:
            run_dir = self._new_run_dir(config)
        if ckpt_path == "last" or (config.run.auto_resume and not ckpt_path):
            last = resume.last_checkpoint(run_dir)
            if last is None and ckpt_path == "last":
                raise FileNotFoundError(
                    f"--ckpt_path last: no {resume.LAST} in run directory {run_dir}"
                )
            if last is not None and resume.is_finished(run_dir) and not ckpt_path:
                raise ValueError(
                    f"--run.auto_resume: run directory {run_dir} holds a finished run "
                    "(summary.json status 'completed'); choose another --run.dir"
                )
            ckpt_path = str(last) if last else None
        if not ckpt_path and (run_dir / "checkpoints").is_dir() and not config.run.auto_resume:
            raise ValueError(
                f"run directory {run_dir} already holds a run (checkpoints/ exists); pass "
                "--ckpt_path last (or --run.auto_resume true) to continue it, or choose "
                "another --run.dir (or --run.dir null)"
            )
        return run_dir, ckpt_path

    def _run_name(self, config: Namespace) -> str:
        return config.run.name or self._config_stem(config)

    def _new_run_dir(self, config: Namespace) -> Path:
        run_dir = Path(config.run.root) / self._run_name(config) / time.strftime("%Y%m%d-%H%M%S")
        suffix = 1
        while run_dir.exists():  # two runs started in the same second get distinct folders
            run_dir = run_dir.with_name(f"{run_dir.name.split('_')[0]}_{suffix}")
            suffix += 1
        return run_dir

    @staticmethod
    def _configure_wandb(run_dir: Path, config: Namespace) -> None:
        """Name new wandb runs after the run directory; resume (same id) a resumed run's."""
        loggers = config.trainer.logger if isinstance(config.trainer.logger, list) else []
        for entry in loggers:
            if not _class_name(entry).endswith("WandbLogger"):
                continue
            args = entry.init_args
            if not args.get("name"):
                args.name = f"{run_dir.parent.name}/{run_dir.name}"
            previous = resume.wandb_run_id(run_dir) if config.ckpt_path else None
            if previous and not args.get("id"):
                args.id = previous
                args.resume = "allow"

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """The configured Trainer plus our callbacks and atomic checkpoint writes."""
        trainer = super().instantiate_trainer(**kwargs)
        console.configure_console(trainer, self.config_init.trainer.get("callbacks"))
        run = self.config.run
        ours: list[pl.Callback] = []
        if run.exact_resume:
            ours.append(ExactResume())
        if run.stop_on_nonfinite:
            ours.append(NonFiniteLossGuard())
        trainer.callbacks[:0] = ours  # before ModelCheckpoint, which Lightning keeps last
        if run.checkpoint_every_n_steps:
            checkpoints = Path(run.dir) / "checkpoints"
            trainer.callbacks.append(PeriodicCheckpoint(checkpoints, run.checkpoint_every_n_steps))
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    @staticmethod
    def _config_stem(config: Namespace) -> str:
        paths = config.get("config") or []
        last = paths[-1] if paths else None
        return (
            Path(str(last.relative if hasattr(last, "relative") else last)).stem if last else "run"
        )

    @staticmethod
    def _loggers_in(run_dir: Path, loggers: Any, resuming: bool = False) -> Any:
        """Point every logger at ``run_dir``; a CSVLogger (metrics.csv) there always comes first.

        The CSV logger is always our ``ResumableCSVLogger`` (a CSVLogger subclass), so that a
        resumed run appends to its metrics.csv instead of deleting it.
        """
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
        csv_entry.class_path = CSV_LOGGER
        csv_entry.init_args.keep_existing = resuming
        csv_entry.init_args.save_dir = str(run_dir)
        csv_entry.init_args.name = ""
        csv_entry.init_args.version = ""
        for entry in others:
            if "save_dir" in entry.init_args or _class_name(entry).endswith("WandbLogger"):
                entry.init_args.save_dir = str(run_dir)
        return [csv_entry, *others]
