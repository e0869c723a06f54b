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
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.io.atomic import atomic_path

_GLOBAL = re.compile(r"GLOBAL (?P<name>[\w.]+)")
_NOT_LOADED = "which lightning_dl.fit never writes, so it is not loaded"


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one clear error for a file that is not one.

    Tensors and plain containers only (all that ``lightning_dl.fit`` writes), so a checkpoint
    from elsewhere cannot run code while it loads. ``lightning_dl.fit`` and
    ``kaggle/predict.py`` both read through here, so they say the same about the same file: a
    pickled payload is named as such (with the global it refers to), in a zip checkpoint or in
    a plain pickle; a file that is neither is truncated or foreign.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise UserInputError(f"{path}: is a directory, not a checkpoint file")
    is_zip = zipfile.is_zipfile(path)
    if not is_zip and not _starts_like_a_pickle(path):  # torch's legacy format is a pickle too
        raise UserInputError(
            f"{path}: truncated or not a PyTorch checkpoint ({path.stat().st_size} bytes, no "
            "zip directory at its end, which every torch.save file has)"
        )
    try:
        with warnings.catch_warnings():  # torch warns about the legacy format: we say more
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if found := _GLOBAL.search(str(error)):
            raise UserInputError(
                f"{path}: holds Python objects other than tensors and plain containers "
                f"(it refers to {found['name']}), {_NOT_LOADED}"
            ) from error
        if not is_zip:
            raise UserInputError(f"{path}: {_describe_pickle(path)}") from error
        raise UserInputError(
            f"{path}: holds Python objects other than tensors and plain containers, "
            f"{_NOT_LOADED} ({_first_line(error)})"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:
        if not is_zip:
            raise UserInputError(f"{path}: {_describe_pickle(path)}") from error
        raise UserInputError(
            f"{path}: truncated or corrupt PyTorch checkpoint ({_first_line(error)})"
        ) from error
    if not isinstance(checkpoint, dict):
        raise UserInputError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint")
    return checkpoint


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _starts_like_a_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"  # the PROTO opcode of pickle protocol 2 and later


def _describe_pickle(path: Path) -> str:
    """What a file that starts like a pickle but is no checkpoint is, read with pickletools
    (which only lists the opcodes: nothing is imported, nothing runs)."""
    names: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for opcode, arg, _ in pickletools.genops(f):
                if opcode.name in ("GLOBAL", "INST"):
                    names.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(".".join(strings[-2:]))
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # pickletools raises ValueError and others on damaged bytes
        return "truncated or not a PyTorch checkpoint (a damaged pickle)"
    if names:
        return (
            f"a plain Python pickle, not a PyTorch checkpoint, and it refers to {names[0]} "
            "(loading it would run code); not loaded"
        )
    return "a plain Python pickle, not a PyTorch checkpoint (torch.save writes a zip archive)"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with same-folder temp file + fsync + ``os.replace`` for local paths."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)  # remote: fsspec's way
            return
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:  # names a full disk
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if "://" in str(path) or weights_only is False:
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(path, map_location)
