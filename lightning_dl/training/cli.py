"""LightningCLI for lightning-dl: a run directory per run, CSV logs always, shapes from the data.

``--ckpt_path last --run.dir DIR`` continues DIR; ``--run.auto_resume true`` continues
``--run.dir`` or the newest unfinished run of the name, else starts one (see
:mod:`lightning_dl.training.run`). A resumed run keeps its wandb run (same id).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from jsonargparse import Namespace
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from data_modules.errors import (
    ReportedError,
    UserInputError,
    describe,
    reported_cause,
    require_at_least,
)
from lightning_dl.training import console
from lightning_dl.training.callbacks.checkpoints import LastCheckpoint
from lightning_dl.training.callbacks.exact_resume import ExactResume
from lightning_dl.training.callbacks.nonfinite import NonFiniteLossGuard
from lightning_dl.training.config_errors import OneLineErrorParser
from lightning_dl.training.precision import RecordPrecision, Trainer
from lightning_dl.training.run import directory
from lightning_dl.training.run.checkpoint_io import AtomicCheckpointIO, accept_old_class_paths
from lightning_dl.training.run.directory import SameRunOnEveryRank, decides_run_directory
from lightning_dl.training.run.signals import install_agreed_signals
from lightning_dl.training.run.summary import RunClock

RUN_DIR_ENV = "LIGHTNING_DL_RUN_DIR"  # lets DDP child processes reuse rank 0's run directory
CKPT_ENV = "LIGHTNING_DL_CKPT_PATH"  # ... and the checkpoint rank 0 resumes from
DEFAULTS = Path(__file__).with_name("defaults.yaml")  # trainer, logger, seed: recipes say the rest
CSV_LOGGER = "lightning_dl.training.run.tracking.csv_logger.ResumableCSVLogger"
DEFAULT_MONITOR = ("val/acc", "max")  # a model class's ``monitor`` replaces it
_AT_LEAST_ONE = ("accumulate_grad_batches", "log_every_n_steps", "check_val_every_n_epoch")


@dataclass
class RunOptions:
    """``--run.*``: where the run directory is and how a run resumes and stops.

    Args:
        root: Parent of run directories.
        name: Default: the config file's stem.
        dir: Exact run directory.
        auto_resume: Continue --run.dir, or the newest unfinished run of this name, if resumable.
        checkpoint_every_n_steps: Also write checkpoints/last.ckpt every K optimizer steps.
        signal_check_every_n_steps: Under DDP, agree on a SIGTERM/requeue signal every K steps
            (default: every logging step).
        exact_resume: Seeded, resumable data order and per-batch RNG seeds.
        stop_on_nonfinite: Stop at the first NaN/inf training loss, before the optimizer step.
    """

    root: str = "runs"
    name: str | None = None
    dir: str | None = None
    auto_resume: bool = False
    checkpoint_every_n_steps: int | None = None
    signal_check_every_n_steps: int | None = None
    exact_resume: bool = True
    stop_on_nonfinite: bool = True


class RunConfigSaver(SaveConfigCallback):
    """Writes config.yaml into the run directory and logs the full config to every logger once."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        as_dict = yaml.safe_load(self.parser.dump(self.config, skip_none=False, format="yaml"))
        for logger in trainer.loggers:
            logger.log_hyperparams(as_dict)


def _class_name(entry: Any) -> str:
    return str(entry.get("class_path", "")) if isinstance(entry, dict | Namespace) else ""


def _check_trainer_options(trainer: Namespace) -> None:
    """Refuse the trainer options that Lightning accepts and then divides by (a traceback)."""
    require_at_least("--trainer", 1, **{key: trainer.get(key) for key in _AT_LEAST_ONE})
    clip = trainer.get("gradient_clip_val")
    if clip is not None and not clip >= 0:  # a negative norm would flip the gradients; NaN
        raise UserInputError(f"--trainer: gradient_clip_val={clip}, expected at least 0")
    interval = trainer.get("val_check_interval")
    if interval is not None and not isinstance(interval, str) and interval <= 0:
        expected = "steps >= 1 or a fraction of an epoch in (0, 1]"
        raise UserInputError(f"--trainer: val_check_interval={interval}, expected {expected}")


def _monitor_from_model(config: Namespace) -> None:
    """The checkpoint's monitor and mode from the model class (``monitor = ("val/dist", "min")``
    on :class:`lightning_dl.tasks.ctc.CTCRecognizer`) unless the config chose others."""
    module, _, name = _class_name(config.get("model")).rpartition(".")
    try:
        model_class = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return  # the CLI has already checked the class; nothing to learn here
    monitor = getattr(model_class, "monitor", None)
    checkpoint = config.get("checkpoint")
    chosen = None if checkpoint is None else (checkpoint.monitor, checkpoint.mode)
    if monitor and chosen == DEFAULT_MONITOR:
        checkpoint.monitor, checkpoint.mode = monitor


class _Parser(OneLineErrorParser):
    """Dumps (``--print_config``, config.yaml) the checkpoint monitor the run will use."""

    def dump(self, cfg: Namespace | dict[str, Any], *args: Any, **kwargs: Any) -> str:
        if isinstance(cfg, Namespace) and cfg.get("checkpoint") is not None:
            cfg = cfg.clone()
            _monitor_from_model(cfg)
        return super().dump(cfg, *args, **kwargs)


class LightningDLCLI(LightningCLI):
    """LightningCLI with run directories; see the module docstring."""

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_class", _Parser)
        kwargs.setdefault("trainer_class", Trainer)
        kwargs.setdefault("parser_kwargs", {"default_config_files": [str(DEFAULTS)]})
        self.named_run_dir = False  # True when we chose the directory (then runs/<name>/latest)
        accept_old_class_paths()  # config files written before the re-layout
        super().__init__(
            pl.LightningModule,  # Classifier, lightning_dl.tasks.ctc.CTCRecognizer, ...
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
        for key in ("num_classes", "input_shape"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")
        parser.add_class_arguments(RunOptions, "run", instantiate=False)
        ckpt_help = "Checkpoint to continue from; 'last' = <run.dir>/checkpoints/last.ckpt."
        parser.add_argument("--ckpt_path", type=str | None, default=None, help=ckpt_help)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        monitor, mode = DEFAULT_MONITOR
        defaults = {"filename": "best", "monitor": monitor, "mode": mode, "save_last": True}
        # no best-v1.ckpt: a resumed run updates its own files
        defaults |= {"auto_insert_metric_name": False, "enable_version_counter": False}
        parser.set_defaults({f"checkpoint.{key}": value for key, value in defaults.items()})

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse as LightningCLI does, and refuse a seed numpy refuses before it is set."""
        super().parse_arguments(parser, args)
        seed = self.config.get("seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2**32:
            raise UserInputError(f"--seed_everything {seed}: expected 0..{2**32 - 1} (or true)")

    def instantiate_classes(self) -> None:
        """Instantiate as LightningCLI does; a class's own UserInputError (``batch_size: -5``) is
        reported as that one error, not as jsonargparse's report about Union subtypes."""
        try:
            super().instantiate_classes()
        except ReportedError:
            raise
        except Exception as error:
            if (reported := reported_cause(error)) is None:
                raise
            raise reported from error

    def before_instantiate_classes(self) -> None:
        config = self.config
        _monitor_from_model(config)
        if os.environ.get(RUN_DIR_ENV) and os.environ.get("LOCAL_RANK", "0") != "0":  # DDP child
            run_dir = Path(os.environ[RUN_DIR_ENV])
            config.ckpt_path = os.environ.get(CKPT_ENV) or None
        else:
            if decides_run_directory():
                run_dir, config.ckpt_path, self.named_run_dir = directory.resolve(config)
            else:  # another node's process: rank 0 decides
                run_dir, config.ckpt_path = directory.follow(config)
            os.environ[RUN_DIR_ENV] = str(run_dir)
            os.environ[CKPT_ENV] = config.ckpt_path or ""
        config.run.dir = str(run_dir)
        config.checkpoint.dirpath = str(run_dir / "checkpoints")
        config.trainer.default_root_dir = str(run_dir)
        resuming = bool(config.ckpt_path)
        config.trainer.logger = self._loggers_in(run_dir, config.trainer.logger, resuming)
        self._configure_wandb(run_dir, config)

    @staticmethod
    def _configure_wandb(run_dir: Path, config: Namespace) -> None:
        """Name new wandb runs after the run directory; resume (same id) a resumed run's."""
        loggers = config.trainer.logger if isinstance(config.trainer.logger, list) else []
        for args in [e.init_args for e in loggers if _class_name(e).endswith("WandbLogger")]:
            if not args.get("name"):
                args.name = f"{run_dir.parent.name}/{run_dir.name}"
            if config.ckpt_path:
                previous = directory.wandb_run_id(run_dir, wait_for_new_segment=True)
                if previous and not args.get("id"):
                    args.id = previous
                    args.resume = "allow"

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """The configured Trainer plus our callbacks and atomic checkpoint writes.
        ``--trainer.enable_checkpointing false`` drops our ModelCheckpoint (``checkpoint.*``),
        which Lightning would otherwise refuse as a contradiction."""
        parser = self._parser(self.subcommand)
        keys = parser.callback_keys
        if self.config_init.trainer.get("enable_checkpointing") is False:
            parser.callback_keys = [key for key in keys if key != "checkpoint"]
        _check_trainer_options(self.config_init.trainer)
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:  # Lightning's refusal of an option
            raise UserInputError(f"--trainer: {describe(error)}") from error
        finally:
            parser.callback_keys = keys
        console.configure_console(trainer, self.config_init.trainer.get("callbacks"))
        run = self.config.run
        ours: list[pl.Callback] = [RecordPrecision(), RunClock()]
        if run.exact_resume:
            ours.append(ExactResume())
        if run.stop_on_nonfinite:
            ours.append(NonFiniteLossGuard())
        install_agreed_signals(trainer)  # SIGTERM / SLURM requeue: agreed by all ranks, see signals
        ours.append(SameRunOnEveryRank(run.dir, self.config.get("ckpt_path")))
        trainer.callbacks[:0] = ours  # before ModelCheckpoint, which Lightning keeps last
        # after it: its write after a validation holds the new best
        every = (run.checkpoint_every_n_steps, run.signal_check_every_n_steps)
        trainer.callbacks.append(LastCheckpoint(Path(run.dir) / "checkpoints", *every))
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO(self.model)
        return trainer

    @staticmethod
    def _loggers_in(run_dir: Path, loggers: Any, resuming: bool = False) -> Any:
        """Point every logger at ``run_dir``; a CSV logger there always comes first, and it is
        our ``ResumableCSVLogger``, so that a resumed run appends to its metrics.csv."""
        if loggers is False:
            return False
        if not isinstance(loggers, list):
            loggers = [] if loggers in (None, True) else [loggers]
        csv_entries = [e for e in loggers if _class_name(e).endswith("CSVLogger")]
        others = [e for e in loggers if not _class_name(e).endswith("CSVLogger")]
        csv_entries.append(Namespace(class_path=CSV_LOGGER, init_args=Namespace()))
        csv_entry = csv_entries[0]
        csv_entry.class_path = CSV_LOGGER
        csv_entry.init_args.keep_existing = resuming
        csv_entry.init_args.save_dir = str(run_dir)
        csv_entry.init_args.name = ""
        csv_entry.init_args.version = ""
        for entry in others:
            if "save_dir" in entry.init_args or _class_name(entry).endswith("WandbLogger"):
                entry.init_args.save_dir = str(run_dir)
        return [csv_entry, *others]
