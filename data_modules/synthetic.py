"""SYNTHETIC data for the quickstart: Gaussian class clusters the project generates itself, so a
fresh clone trains, tests and reports end to end in seconds without any download."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from data_modules.batches.batched import BatchedTensorDataset, passthrough_collate
from data_modules.errors import UserInputError, require_at_least


def make_clusters(n: int, num_features: int, num_classes: int, noise: float, seed: int):
    """``n`` points around ``num_classes`` random centres (fixed by ``seed``), with labels."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, num_features, generator=gen)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    points = centres[labels] + noise * torch.randn(n, num_features, generator=gen)
    return points, labels


class SyntheticClustersDataModule(pl.LightningDataModule):
    """Train/val/test drawn from the same SYNTHETIC cluster distribution."""

    def __init__(
        self,
        num_train: int = 8000,
        num_val: int = 2000,
        num_test: int = 2000,
        num_features: int = 32,
        num_classes: int = 10,
        noise: float = 1.0,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__()
        where = "SyntheticClustersDataModule"
        require_at_least(where, 1, num_train=num_train, num_val=num_val, num_test=num_test)
        require_at_least(where, 1, num_features=num_features, batch_size=batch_size)
        require_at_least(where, 2, num_classes=num_classes)
        if not 0 <= noise < float("inf"):  # NaN too
            raise UserInputError(f"{where}: noise={noise}, expected a finite value >= 0")
        self.save_hyperparameters(logger=False)
        self.num_classes = num_classes
        self.input_shape = (num_features,)
        self.batch_size = batch_size
        self.datasets: dict[str, BatchedTensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        sizes = {"train": hp.num_train, "val": hp.num_val, "test": hp.num_test}
        points, labels = make_clusters(
            sum(sizes.values()), hp.num_features, hp.num_classes, hp.noise, hp.seed
        )
        counts = list(sizes.values())
        for split, x, y in zip(sizes, points.split(counts), labels.split(counts), strict=True):
            self.datasets[split] = BatchedTensorDataset(x, y)

    def _loader(self, dataset: BatchedTensorDataset, **kwargs: Any) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, collate_fn=passthrough_collate, **kwargs
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["train"], shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"])

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"])

    def predict_dataloader(self) -> DataLoader:
        return self._loader(BatchedTensorDataset(self.datasets["test"].tensors[0]))
