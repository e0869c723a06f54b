"""Old dotted paths of moved modules, still importable: checkpoints and configs name classes by
their module (``data_modules.wsj.WSJFramesDataModule``, ``lightning_dl.classifier.Classifier``
in every checkpoint written before the re-layout of issue 21), and must keep loading.

An import of an old name returns the module at its new place (the same module object, so
classes compare equal); nothing else changes. Installed by ``data_modules/__init__.py``, which
every import of either package runs first.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

MOVED = {  # old module -> its place since the re-layout
    "lightning_dl.errors": "data_modules.errors",
    "lightning_dl.atomic": "data_modules.io.atomic",
    "data_modules.download": "data_modules.io.download",
    "data_modules.idx": "data_modules.io.idx",
    "data_modules.safe_pickle": "data_modules.io.safe_pickle",
    "data_modules.batched": "data_modules.batches.batched",
    "data_modules.augment": "data_modules.batches.augment",
    "data_modules.index_order": "data_modules.batches.index_order",
    "lightning_dl.samplers": "data_modules.batches.samplers",
    "lightning_dl.resumable_loader": "data_modules.batches.resumable_loader",
    "data_modules.bucketing": "data_modules.batches.bucketing",
    "data_modules.image_datamodule": "data_modules.images.datamodule",
    "data_modules.mnist": "data_modules.images.mnist",
    "data_modules.cifar10": "data_modules.images.cifar10",
    "data_modules.wsj_cache": "data_modules.speech.frames.cache",
    "data_modules.wsj_files": "data_modules.speech.layouts.wsj",
    "data_modules.wsj": "data_modules.speech.frames.datamodule",
    "data_modules.resident_frames": "data_modules.speech.frames.resident",
    "data_modules.memmap_frames": "data_modules.speech.frames.memmap",
    "data_modules.frame_augment": "data_modules.speech.frames.augment",
    "data_modules.frame_voices": "data_modules.speech.frames.voices",
    "data_modules.frame_checks": "data_modules.speech.checks",
    "data_modules.frame_formats": "data_modules.speech.layouts.frames",
    "data_modules.sequence_formats": "data_modules.speech.layouts.sequences",
    "data_modules.librispeech_files": "data_modules.speech.layouts.librispeech",
    "data_modules.libriphone_files": "data_modules.speech.layouts.libriphone",
    "data_modules.phoneme_codes": "data_modules.speech.layouts.phoneme_codes",
    "data_modules.utterances": "data_modules.speech.sequences.datamodule",
    "data_modules.demo_corpus": "data_modules.speech.demo_corpus",
    "lightning_dl.classifier": "lightning_dl.tasks.classifier",
    "lightning_dl.ctc_decode": "lightning_dl.tasks.ctc_decode",
    "lightning_dl.ctc_submission": "lightning_dl.predict.ctc_submission",
    "lightning_dl.ctc": "lightning_dl.tasks.ctc",
    "lightning_dl.optim": "lightning_dl.tasks.optim",
    "lightning_dl.cli": "lightning_dl.training.cli",
    "lightning_dl.config_errors": "lightning_dl.training.config_errors",
    "lightning_dl.precision": "lightning_dl.training.precision",
    "lightning_dl.callbacks": "lightning_dl.training.callbacks",
    "lightning_dl.run": "lightning_dl.training.run",
    "lightning_dl.tracking": "lightning_dl.training.run.tracking",
    "lightning_dl.console": "lightning_dl.training.console",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the target ran when it was imported


class _OldPaths(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None):
        for old, new in MOVED.items():  # a moved package's submodules moved with it
            if fullname == old or fullname.startswith(old + "."):
                return importlib.machinery.ModuleSpec(fullname, _Alias(new + fullname[len(old) :]))
        return None


def install() -> None:
    """Put the finder first: a submodule of a moved package (``lightning_dl.callbacks.ema``)
    would otherwise be found again in its new folder and run a second time under its old name.
    The old names no longer exist, so the finder shadows nothing."""
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OldPaths())


def alias_old_paths(module_name: str) -> None:
    """Enter a module that was just imported under its old names too. Lightning checks a
    checkpoint's ``_class_path`` in ``sys.modules`` alone (it never imports), so a
    LightningModule's module calls this for checkpoints that name its old path."""
    module = sys.modules[module_name]
    for old, new in MOVED.items():
        if new == module_name:
            sys.modules.setdefault(old, module)
