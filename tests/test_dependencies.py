"""The private library members the code relies on, and the lower-bound pins.

A private member that moves in a new release fails here with its name and its user, not in a run.
"""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (module, attribute path, the module of ours that needs it)
PRIVATE = [
    (
        "pytorch_lightning.trainer.trainer",
        "Trainer._signal_connector",
        "callbacks/checkpoints.py, run/signals.py",
    ),
    (
        "pytorch_lightning.trainer.trainer",
        "Trainer._logger_connector",
        "callbacks/exact_resume.py, nonfinite.py",
    ),
    (
        "pytorch_lightning.trainer.trainer",
        "Trainer._accelerator_connector",
        "callbacks/exact_resume.py, run/signals.py",
    ),
    (
        "pytorch_lightning.loops.fit_loop",
        "_FitLoop._should_accumulate",
        "callbacks/exact_resume.py",
    ),
    ("pytorch_lightning.loops.fit_loop", "_FitLoop._data_fetcher", "callbacks/checkpoints.py"),
    (
        "pytorch_lightning.loops.training_epoch_loop",
        "_TrainingEpochLoop._should_check_val_fx",
        "callbacks/checkpoints.py",
    ),
    (
        "pytorch_lightning.loops.training_epoch_loop",
        "_TrainingEpochLoop._batches_that_stepped",
        "callbacks/exact_resume.py",
    ),
    (
        "pytorch_lightning.loops.training_epoch_loop",
        "_TrainingEpochLoop._broadcast_sigterm_tensor",
        "run/signals.py",
    ),
    (
        "pytorch_lightning.trainer.connectors.signal_connector",
        "_SignalConnector.received_sigterm",
        "run/signals.py",
    ),
    (
        "pytorch_lightning.trainer.connectors.logger_connector.logger_connector",
        "_LoggerConnector.should_update_logs",
        "nonfinite.py",
    ),
    (
        "pytorch_lightning.trainer.connectors.accelerator_connector",
        "_AcceleratorConnector.use_distributed_sampler",
        "exact_resume.py",
    ),
    (
        "pytorch_lightning.trainer.connectors.accelerator_connector",
        "_AcceleratorConnector.cluster_environment",
        "run/signals.py",
    ),
    ("pytorch_lightning.core.saving", "_load_state", "run/checkpoint_io.py"),
    (
        "pytorch_lightning.callbacks.weight_averaging",
        "WeightAveraging._average_model",
        "callbacks/ema.py",
    ),
    ("pytorch_lightning.loggers.wandb", "WandbLogger._experiment", "fit.py"),
    ("lightning_fabric.connector", "_PRECISION_INPUT", "training/precision.py"),
    ("torchmetrics", "Metric._update_count", "callbacks/exact_resume.py"),
    ("torchmetrics", "Metric._computed", "callbacks/exact_resume.py"),
    ("jsonargparse", "ArgumentParser._option_string_actions", "training/config_errors.py"),
    ("jsonargparse", "ArgumentParser._actions", "training/config_errors.py"),
    ("optuna.trial", "Trial._trial_id", "sweep/study.py"),
    ("optuna.trial", "FrozenTrial._trial_id", "sweep/study.py"),
]


def _has(obj, name):
    """Instance attributes set in __init__ are found in its source, the rest on the class."""
    if hasattr(obj, name):
        return True
    import inspect

    return isinstance(obj, type) and any(
        f"self.{name}" in inspect.getsource(k) for k in obj.__mro__ if k.__module__ != "builtins"
    )


@pytest.mark.parametrize("module,path,user", PRIVATE, ids=[p[1] for p in PRIVATE])
def test_private_member_exists(module, path, user):
    obj = importlib.import_module(module)
    for part in path.split("."):
        assert _has(obj, part), f"{module}.{path} is gone (lightning_dl/{user} needs it)"
        obj = getattr(obj, part, None) or obj


def test_lower_bound_pins_equal_pyproject():
    deps = re.search(
        r"dependencies = \[.*?\n(.*?)\n\]", (ROOT / "pyproject.toml").read_text(), re.S
    )
    declared = dict(re.findall(r'"([\w\-]+)(?:\[\w+\])?>=([\w.]+)', deps.group(1)))
    lines = (ROOT / ".ci/lower-bounds.txt").read_text().splitlines()
    pinned = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert pinned == declared
