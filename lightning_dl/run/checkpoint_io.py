"""Checkpoint files that are either the old complete file or the new complete file, never half.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction, which stages the file in
the *system* temp dir (``tempfile.mkstemp()``) and then ``shutil.move``s it: an atomic rename
only when /tmp and the checkpoint folder share a filesystem, a byte copy into the destination
otherwise (common with a tmpfs /tmp or a network home), and never fsynced. Here the temp file
sits beside the destination, is fsynced, then ``os.replace``d over it. A full disk is reported
as such, naming the file (torch's zip writer only says "unexpected pos"); a truncated or foreign
file given to ``--ckpt_path`` is named and refused in one line.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from lightning_dl.atomic import atomic_path
from lightning_dl.errors import InputFileNotFoundError, UserInputError, raise_if_disk_full


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one clear error for a file that is not one.

    Tensors and plain containers only (all that ``lightning_dl.fit`` writes), so a checkpoint
    from elsewhere cannot run code while it loads.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise UserInputError(f"{path}: is a directory, not a checkpoint file")
    if not zipfile.is_zipfile(path):
        raise UserInputError(
            f"{path}: truncated or not a PyTorch checkpoint ({path.stat().st_size} bytes, no "
            "zip directory at its end, which every torch.save file has)"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserInputError(
            f"{path}: holds Python objects other than tensors and plain containers, which "
            f"lightning_dl.fit never writes, so it is not loaded ({str(error).splitlines()[0]})"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(
            f"{path}: truncated or corrupt PyTorch checkpoint ({first})"
        ) from error
    if not isinstance(checkpoint, dict):
        raise UserInputError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint")
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with same-folder temp file + fsync + ``os.replace`` for local paths."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)  # remote: fsspec's way
            return
        try:
            with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
        except (OSError, RuntimeError) as error:
            raise_if_disk_full(error, path)
            raise

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if "://" in str(path) or weights_only is False:
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(path, map_location)
