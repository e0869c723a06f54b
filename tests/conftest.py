"""Shared fixtures: tiny real-format datasets and an offline, quiet environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.datafiles import write_cifar10, write_mnist

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    return write_mnist(tmp_path / "mnist")


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    return write_cifar10(tmp_path / "cifar")
