"""What the frame and the sequence DataModules share: the layout read, the splits each stage
sets up, the loaders' splits, the resident choice and the checkpointed inventory."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Literal, NoReturn, get_args, get_origin, get_type_hints

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_info
from torch.utils.data import DataLoader

from data_modules.errors import InputFileNotFoundError, UserInputError, require_at_least
from data_modules.speech.checks import Inventory, layout_of
from data_modules.speech.frames.resident import resident_budget


def _allowed(hint: Any) -> tuple:
    """The values a ``Literal`` (or ``bool | Literal``) hint allows; () for any other hint."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    parts = [(True, False) if a is bool else _allowed(a) for a in get_args(hint)]
    return sum(parts, ()) if parts and all(parts) else ()


class SpeechDataModule(pl.LightningDataModule):
    """A subclass names its ``layouts`` module (``FORMATS``, ``COURSES``, ``FOREIGN``,
    ``markers``, ``detect_format``) and writes ``_read_inventory``, ``_test_split``,
    ``_dataset`` and ``_loader``."""

    layouts: ModuleType
    demo_names: dict[str, str] = {}  # layout -> the demo corpus layout written for it

    def __init__(self, data_dir: str) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self._format: str | None = None
        self._inventory: Inventory | None = None
        self.global_stats: tuple[np.ndarray, np.ndarray] | None = None
        self.datasets: dict[str, Any] = {}
        self.augment: dict | None = None

    def _check_settings(self) -> None:
        """One line for a setting outside its ``Literal`` (jsonargparse says so on the command
        line; a Python caller gets the same) or a size too small."""
        for name, hint in get_type_hints(type(self).__init__).items():
            allowed, value = _allowed(hint), self.hparams.get(name)
            if allowed and value not in allowed:
                raise UserInputError(f"{name} must be one of {allowed}, got {value!r}")
        hp, name = self.hparams, type(self).__name__
        require_at_least(name, 1, batch_size=hp.batch_size, demo_utterances=hp.demo_utterances)
        require_at_least(name, 1, demo_workers=hp.demo_workers)
        require_at_least(name, 0, demo_seed=hp.demo_seed)

    @property
    def format(self) -> str:
        """The layout read: ``source``, the demo's layout, or the one ``auto`` found."""
        if self._format is None:
            source = self.hparams.source
            if source == "auto":
                self._format, markers = self.layouts.detect_format(self.data_dir)
                rank_zero_info(
                    f"{self.data_dir}: found the {self._format} layout of "
                    f"{self.layouts.COURSES[self._format]} ({', '.join(markers)})"
                )
            else:
                self._format = self.hparams.demo_layout if source == "demo" else source
        return self._format

    def _refuse(self, error: InputFileNotFoundError) -> NoReturn:
        """Raise ``error``, naming the layout ``data_dir`` holds if it is not the one asked for."""
        found = layout_of(self.data_dir, self.layouts.markers)
        if found is None or found[0] == self.format:
            raise error
        name, files = found
        hint = self.layouts.FOREIGN.get(name, f"--data.source {name} (or auto) reads it")
        raise InputFileNotFoundError(
            f"{error}; {self.data_dir} holds the {name} layout ({', '.join(files)}): {hint}"
        ) from error

    @property
    def _demo_name(self) -> str:
        return self.demo_names.get(self.format, self.format)

    def _known_inventory(self) -> Inventory | None:
        """The inventory known without reading data (a checkpoint's, the demo's), else None."""
        if self._inventory is None and self.hparams.source == "demo":
            from data_modules.speech.demo_corpus import layouts  # numpy only

            self._inventory = Inventory.from_state(layouts.inventory(self._demo_name))
        return self._inventory

    @property
    def inventory(self) -> Inventory:
        """Feature dimension and classes of the data (from its training split, once)."""
        if self._known_inventory() is None:
            self._inventory = self._read_inventory()
            rank_zero_info(f"{self.data_dir}: {self._inventory.describe()}")
        return self._inventory

    @property
    def num_classes(self) -> int:
        return self.inventory.num_classes

    def prepare_data(self) -> None:
        if self.hparams.source == "demo":
            # Cheap when the corpus on disk matches the request; another request is refused.
            from data_modules.speech.demo_corpus import build_demo_corpus  # optional extra

            hp = self.hparams
            build_demo_corpus(
                self.data_dir,
                n_utterances=hp.demo_utterances,
                seed=hp.demo_seed,
                workers=hp.demo_workers,
                layout=self._demo_name,
            )

    def _training_device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _resident_device(self, needed_bytes: int) -> torch.device | None:
        """Where a split of ``needed_bytes`` is held for gathering there (None: the host)."""
        mode, device = self.hparams.resident, self._training_device()
        if mode != "auto":
            return device if mode else None
        trainer = getattr(self, "trainer", None)
        processes = trainer.num_devices if trainer is not None and device.type == "cpu" else 1
        return device if needed_bytes <= resident_budget(device, processes) else None

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": [("train", True), ("dev", True)],
            "validate": [("dev", True)],
            "test": [(self._test_split(), True)],
            "predict": [(self.hparams.predict_split, False)],
        }
        for split, labelled in wanted[stage] if stage else wanted["fit"] + wanted["test"]:
            name = split if labelled else f"{split}-unlabelled"
            if name not in self.datasets:
                self.datasets[name] = self._dataset(split, labelled)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._test_split(), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(f"{self.hparams.predict_split}-unlabelled", shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``augment`` applies to training batches only, on the device."""
        trainer = getattr(self, "trainer", None)
        if self.augment is None or trainer is None or not trainer.training:
            return batch
        return self._augmented(batch)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"inventory": self.inventory.to_state()}
        if self.global_stats is not None:
            state["global_mean"] = self.global_stats[0].tolist()
            state["global_var"] = self.global_stats[1].tolist()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a checkpoint's inventory and statistics; refuse data with other classes."""
        if "inventory" in state_dict:
            saved = Inventory.from_state(state_dict["inventory"])
            if self._inventory is not None and self._inventory != saved:
                raise UserInputError(
                    f"the checkpoint was trained on {saved.describe()}, but {self.data_dir} "
                    f"holds {self._inventory.describe()}: give the checkpoint the data it was "
                    "trained on"
                )
            self._inventory, self._format = saved, saved.format
        if "global_mean" in state_dict:
            mean, var = state_dict["global_mean"], state_dict["global_var"]
            self.global_stats = (np.array(mean), np.array(var))
            for ds in self.datasets.values():  # setup may already have run
                getattr(ds, "set_global_stats", lambda stats: None)(self.global_stats)
