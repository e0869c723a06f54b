"""Shared base of the in-memory image DataModules (MNIST, CIFAR-10): uint8 tensors (on the GPU
when training there), one index operation a batch, normalisation and augmentation on the device."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from data_modules.batches import augment
from data_modules.batches.batched import BatchedTensorDataset, passthrough_collate
from data_modules.errors import UserInputError, require_at_least


def split_sizes(n: int, val_split: int | float) -> tuple[int, int]:
    """(train, val) counts for ``val_split`` given as a count or a fraction of ``n``."""
    if isinstance(val_split, float):
        if not 0.0 <= val_split < 1.0:
            raise UserInputError(
                f"val_split={val_split}: a fraction must be in [0, 1), a count an int"
            )
        n_val = round(n * val_split)
    else:
        n_val = int(val_split)
    if not 0 <= n_val < n:
        raise UserInputError(f"val_split={val_split} leaves no training data out of {n} samples")
    return n - n_val, n_val


class InMemoryImageDataModule(pl.LightningDataModule):
    """Images held as uint8 tensors; subclasses implement ``prepare_data`` and ``load_split``."""

    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0
    hflip: bool = False

    def __init__(
        self,
        data_dir: str = "data",
        val_split: int | float = 5000,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        normalize: bool = True,
        augment: bool = False,
        seed: int = 42,
        download: bool = False,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        """``mean``/``std`` replace the dataset's own per-channel statistics, e.g. ImageNet's
        (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) for a backbone pretrained on ImageNet."""
        super().__init__()
        where = type(self).__name__
        require_at_least(where, 1, batch_size=batch_size, eval_batch_size=eval_batch_size)
        require_at_least(where, 0, num_workers=num_workers)
        self.save_hyperparameters(logger=False)
        channels = self.input_shape[0]
        for name, values in (("mean", mean), ("std", std)):
            if values is None:
                continue
            if len(values) != channels:
                raise UserInputError(
                    f"{where}: {name} needs {channels} values (one per channel), got {list(values)}"
                )
            if not all(math.isfinite(float(v)) for v in values):
                raise UserInputError(f"{where}: {name} must be finite, got {values}")
            if name == "std" and min(values) <= 0:
                raise UserInputError(f"{where}: std must be > 0, got {list(values)}")
            setattr(self, name, tuple(float(v) for v in values))
        self.data_dir = data_dir
        self.val_split = val_split
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.normalize = normalize
        self.augment = augment
        self.seed = seed
        self.download = download
        self.datasets: dict[str, BatchedTensorDataset] = {}
        self._norm_constants: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def load_split(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        """Return (uint8 images (N, C, H, W), int64 labels (N,)) of the train or test files."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        images, labels = self.load_split(train=True)
        n_train, n_val = split_sizes(len(images), self.val_split)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed))
        x, y = torch.from_numpy(images), torch.from_numpy(labels)
        self.datasets["train"] = BatchedTensorDataset(x[order[:n_train]], y[order[:n_train]])
        if n_val:
            self.datasets["val"] = BatchedTensorDataset(x[order[n_train:]], y[order[n_train:]])
        test_x, test_y = map(torch.from_numpy, self.load_split(train=False))
        self.datasets["test"] = BatchedTensorDataset(test_x, test_y)
        device = self._training_device()
        if device.type != "cpu" and self.num_workers == 0:
            self.datasets = {k: v.to(device) for k, v in self.datasets.items()}

    def _training_device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            if split == "val" and self.datasets:
                raise UserInputError(
                    f"{type(self).__name__}: val_split={self.val_split} leaves no validation "
                    "split, but the trainer validates: set val_split > 0 (or "
                    "trainer.limit_val_batches: 0)"
                )
            raise RuntimeError(f"no '{split}' split: call setup() first")
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.num_workers,
            collate_fn=passthrough_collate,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        test = BatchedTensorDataset(self.datasets["test"].tensors[0])
        return DataLoader(test, batch_size=self.eval_batch_size, collate_fn=passthrough_collate)

    def transform(self, images: torch.Tensor, training: bool) -> torch.Tensor:
        """uint8 batch -> float batch: augmentation (training only), then normalisation."""
        if training and self.augment:
            images = augment.random_crop(images, self.crop_padding)
            if self.hflip:
                images = augment.random_hflip(images)
        if not self.normalize:
            return images.float().div_(255.0)
        return augment.normalize(images, *self._mean_std(images.device))

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalisation constants as tensors on ``device``, made once per device."""
        if device not in self._norm_constants:
            self._norm_constants[device] = (
                torch.tensor(self.mean, device=device),
                torch.tensor(self.std, device=device),
            )
        return self._norm_constants[device]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "trainer", None)
        training = bool(trainer is not None and trainer.training)
        x, *rest = batch
        return (self.transform(x, training), *rest)
