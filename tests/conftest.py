"""Shared fixtures: tiny real-format datasets and an offline, quiet environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.datafiles import write_cifar10, write_mnist

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _rank_zero_restored():
    """Lightning keeps the process's rank in a global (``rank_zero_only.rank``) that a Trainer
    built as another rank (tests of torchrun's or SLURM's variables) leaves behind; every later
    in-process run in that xdist worker would then log nothing and get dummy loggers."""
    from lightning_utilities.core.rank_zero import rank_zero_only

    saved = getattr(rank_zero_only, "rank", None)
    yield
    if saved is None:
        if hasattr(rank_zero_only, "rank"):
            del rank_zero_only.rank
    else:
        rank_zero_only.rank = saved


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    return write_mnist(tmp_path / "mnist")


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    return write_cifar10(tmp_path / "cifar")
