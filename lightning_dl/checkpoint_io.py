"""Checkpoint files that are either the old complete file or the new complete file, never half.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction, which stages the file in
the *system* temp dir (``tempfile.mkstemp()``) and then ``shutil.move``s it: an atomic rename
only when /tmp and the checkpoint folder share a filesystem, a byte copy into the destination
otherwise (common with a tmpfs /tmp or a network home), and never fsynced. Here the temp file
sits beside the destination, is fsynced, then ``os.replace``d over it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from lightning_dl.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with same-folder temp file + fsync + ``os.replace`` for local paths."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)  # remote: fsspec's way
            return
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
