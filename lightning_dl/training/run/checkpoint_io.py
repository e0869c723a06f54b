"""The one checkpoint reader and writer (resume, test, predict). A save is written beside its
target, fsynced and ``os.replace``d (Lightning's is staged in the temp dir, never fsynced); reads
are ``weights_only`` (a foreign file runs no code), a bad file is one line, an old one upgraded."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import pickle
import pickletools
import re
import sys
import warnings
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytorch_lightning as pl
import torch
import yaml
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.core.saving import _load_state

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.io.atomic import atomic_path
from data_modules.speech.checks import Inventory, window_frames

_GLOBAL = re.compile(r"GLOBAL (?P<name>[\w.]+)")
_NOT_LOADED = "which lightning_dl.fit never writes, so it is not loaded"
_OBJECTS = "holds Python objects other than tensors and plain containers"
M = TypeVar("M", bound=pl.LightningModule)
_PATH_KEYS = ("class_path", "_class_path")

MOVED = {  # before the re-layout -> since; the modules whose classes configs and checkpoints name
    "data_modules.image_datamodule": "data_modules.images.datamodule",
    "data_modules.mnist": "data_modules.images.mnist",
    "data_modules.cifar10": "data_modules.images.cifar10",
    "data_modules.wsj": "data_modules.speech.frames.datamodule",
    "data_modules.frame_augment": "data_modules.speech.frames.augment",
    "data_modules.utterances": "data_modules.speech.sequences.datamodule",
    "lightning_dl.classifier": "lightning_dl.tasks.classifier",
    "lightning_dl.ctc": "lightning_dl.tasks.ctc",
    "lightning_dl.optim": "lightning_dl.tasks.optim",
    "lightning_dl.precision": "lightning_dl.training.precision",
    "lightning_dl.callbacks": "lightning_dl.training.callbacks",  # and its submodules
    "lightning_dl.run": "lightning_dl.training.run",
    "lightning_dl.tracking": "lightning_dl.training.run.tracking",
    "lightning_dl.console": "lightning_dl.training.console",
}
RENAMED = {"WSJFramesDataModule": "SpeechFramesDataModule"}  # class names: state keys, paths


def new_path(path: str) -> str:
    """The dotted path an old module or class path has since the re-layout."""
    if old := next((m for m in MOVED if path == m or path.startswith(m + ".")), None):
        path = MOVED[old] + path[len(old) :]
    module, _, name = path.rpartition(".")
    return f"{module}.{RENAMED[name]}" if name in RENAMED else path


def _new_class_paths(node: Any) -> Any:
    if isinstance(node, dict):
        paths = {k: new_path(v) for k, v in node.items() if k in _PATH_KEYS and isinstance(v, str)}
        return {k: paths.get(k) or _new_class_paths(v) for k, v in node.items()}
    return [_new_class_paths(v) for v in node] if isinstance(node, list) else node


def run_config(path: str | Path) -> Path:
    """The config.yaml of the run a checkpoint (RUN/checkpoints/X.ckpt) belongs to."""
    return Path(path).resolve().parent.parent / "config.yaml"


def upgrade(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """An old checkpoint as today's code writes it, in memory: moved class paths and state keys,
    DataModule settings from the run's config.yaml, and Kaggle WSJ frames' inventory and shape."""
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        if isinstance(checkpoint.get(key), dict):
            checkpoint[key] = _new_class_paths(checkpoint[key])
    for old, new in RENAMED.items():
        if old in checkpoint and new not in checkpoint:
            checkpoint[new] = checkpoint.pop(old)
    if not checkpoint.get("datamodule_hyper_parameters") and run_config(path).is_file():
        data = (yaml.safe_load(run_config(path).read_text()) or {}).get("data") or {}
        checkpoint["datamodule_hyper_parameters"] = dict(data.get("init_args", data))
    hp = checkpoint.get("hyper_parameters") or {}
    settings = checkpoint.get("datamodule_hyper_parameters") or {}
    if "context" in settings and "input_shape" in hp and "num_classes" in hp:
        window, shape = window_frames(settings["context"]), tuple(hp["input_shape"])
        state = checkpoint.setdefault(RENAMED["WSJFramesDataModule"], {})
        if "inventory" not in state:
            width = shape[-1] if len(shape) == 2 else shape[0] // window
            state["inventory"] = Inventory("kaggle", int(width), int(hp["num_classes"])).to_state()
        if len(shape) == 1 and shape[0] == window * state["inventory"]["feature_dim"]:
            hp["input_shape"] = (window, shape[0] // window)
    return checkpoint


class _Alias(importlib.abc.Loader, importlib.abc.MetaPathFinder):
    """Imports an old module name as the module at its new place (the same module object)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        new = new_path(fullname)
        return None if new == fullname else importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(new_path(spec.name))

    def exec_module(self, module: ModuleType) -> None:
        pass  # the module ran when it was imported under its new name


def accept_old_class_paths() -> None:
    """Let configs name classes by their old paths: first on ``sys.meta_path``, or a moved
    package's submodule would be found in its new folder and run twice."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint's dict, :func:`upgrade`\\ d, or one line on what the file is instead."""
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise UserInputError(f"{path}: is a directory, not a checkpoint file")
    with open(path, "rb") as f:
        pickled = f.read(1) == b"\x80"  # pickle protocol 2+ (torch's legacy format is one)
    is_zip = zipfile.is_zipfile(path)
    if not is_zip and not pickled:
        raise UserInputError(
            f"{path}: truncated or not a PyTorch checkpoint ({path.stat().st_size} bytes, no "
            "zip directory at its end, which every torch.save file has)"
        )
    try:
        with warnings.catch_warnings():  # torch warns about the legacy format: we say more
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, KeyError) as error:
        unsafe = isinstance(error, pickle.UnpicklingError)
        if unsafe and (found := _GLOBAL.search(str(error))):
            what = f"{_OBJECTS} (it refers to {found['name']}), {_NOT_LOADED}"
            raise UserInputError(f"{path}: {what}") from error
        if not is_zip:
            raise UserInputError(f"{path}: {_describe_pickle(path)}") from error
        what = f"{_OBJECTS}, {_NOT_LOADED}" if unsafe else "truncated or corrupt PyTorch checkpoint"
        raise UserInputError(f"{path}: {what} ({_first_error_line(error)})") from error
    if not isinstance(checkpoint, dict):
        raise UserInputError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint")
    return upgrade(checkpoint, path)


def _describe_pickle(path: Path) -> str:
    """What a pickle that is no checkpoint is, read with pickletools (nothing is imported)."""
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
    plain = "a plain Python pickle, not a PyTorch checkpoint"
    if names:
        return f"{plain}, and it refers to {names[0]} (loading it would run code); not loaded"
    return f"{plain} (torch.save writes a zip archive)"


def _first_error_line(error: BaseException) -> str:
    """The line of a (torch) error message that says what failed, to its first full stop."""
    lines = [line for line in str(error).splitlines() if "rror" in line] or str(error).splitlines()
    return (lines[-1] if lines else type(error).__name__).strip().split(". ")[0]


def load_module(
    path: str | Path, kind: type[M] = pl.LightningModule, ckpt: dict[str, Any] | None = None
) -> M:
    """``kind.load_from_checkpoint`` on the upgraded dict (Lightning's reads the file again).
    Only our own modules are imported by name; another must be imported already."""
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    class_path = (ckpt.get("hyper_parameters") or {}).get("_class_path")
    module, _, name = str(class_path).rpartition(".")
    try:
        if module.startswith("lightning_dl."):
            importlib.import_module(module)
        cls = getattr(sys.modules.get(module), name, None) if class_path else kind
        if not (isinstance(cls, type) and issubclass(cls, kind)):
            raise TypeError(f"it holds a {class_path}")
        return _load_state(cls, ckpt, strict=True)
    except UserInputError:
        raise
    except (ImportError, TypeError, KeyError, RuntimeError, ValueError) as error:
        raise UserInputError(  # other hyperparameters or weights
            f"{path}: not a checkpoint of {kind.__module__}.{kind.__qualname__} that this "
            f"version can load ({type(error).__name__}: {_first_error_line(error)})"
        ) from error


def _named(task: str, backbone: str | None) -> str:
    """'a Classifier (backbone MLP)'."""
    name = task.rpartition(".")[2]
    return f"a {name}" + (f" (backbone {backbone.rpartition('.')[2]})" if backbone else "")


def check_fits(path: Any, checkpoint: dict[str, Any], model: pl.LightningModule) -> None:
    """Refuse another task's (or backbone's) checkpoint in one line, before ``load_state_dict``
    would print a screenful of missing and unexpected keys."""
    theirs = {k: tuple(getattr(v, "shape", ())) for k, v in checkpoint["state_dict"].items()}
    ours = {k: tuple(getattr(v, "shape", ())) for k, v in model.state_dict().items()}
    both = theirs.keys() & ours.keys()
    wrong = [f"{k} is {theirs[k]} there, {ours[k]} here" for k in both if theirs[k] != ours[k]]
    if model.strict_loading:
        wrong += [f"no {k} there" for k in ours.keys() - both]
        wrong += [f"{k} not in the model" for k in theirs.keys() - both]
    if not wrong:
        return
    hp = checkpoint.get("hyper_parameters") or {}
    spec = hp.get("backbone")
    held_backbone = spec.get("class_path") if isinstance(spec, dict) else None
    held = _named(str(hp.get("_class_path", "LightningModule of unrecorded class")), held_backbone)
    backbone = getattr(model, "backbone", None)
    asked = _named(type(model).__name__, None if backbone is None else type(backbone).__name__)
    raise UserInputError(
        f"{path}: holds {held}, but the config asks for {asked}; its weights do not fit "
        f"({sorted(wrong)[0]}; {len(wrong)} in all)"
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Local saves atomic and fsynced; reads refuse a checkpoint that does not fit ``model``."""

    def __init__(self, model: pl.LightningModule | None = None) -> None:
        super().__init__()
        self.model = model

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
            checkpoint = upgrade(super().load_checkpoint(path, map_location, weights_only), path)
        else:
            checkpoint = read_checkpoint(path, map_location)
        if self.model is not None and "state_dict" in checkpoint:
            check_fits(path, checkpoint, self.model)
        return checkpoint
