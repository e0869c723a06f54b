"""``python -m tests.helpers.ddp_predict DEVICES OUT.csv [NAIVE.csv]``: Kaggle-style CSVs.

Under torchrun on several nodes the number of nodes is ``WORLD_SIZE / DEVICES``.

OUT.csv comes from ``predict_in_order``; NAIVE.csv (optional) from what rank 0 gets back from a
plain ``trainer.predict``. tests/test_ddp.py compares them between 1 and 2 processes. The 101
test samples in batches of 10 split 51/50 over two ranks: 6 batches on one, 5 on the other.
"""

from __future__ import annotations

import os
import sys
from functools import partial

import pytorch_lightning as pl
import torch

from data_modules.errors import close_process_group
from data_modules.io.atomic import write_text_atomic
from data_modules.synthetic import SyntheticClustersDataModule
from lightning_dl.models.mlp import MLP
from lightning_dl.predict.ordered import predict_in_order
from lightning_dl.tasks.classifier import Classifier


def _write_csv(path: str, labels) -> None:
    rows = "".join(f"{i},{int(label)}\n" for i, label in enumerate(labels))
    write_text_atomic(path, "id,label\n" + rows)


def main(devices: int, out: str, naive_out: str | None = None) -> None:
    pl.seed_everything(0)
    datamodule = SyntheticClustersDataModule(
        num_train=64, num_val=16, num_test=101, num_classes=10, batch_size=10
    )
    model = Classifier(partial(MLP, hidden=[16]), num_classes=10, input_shape=(32,))
    # under torchrun on several nodes (tests/test_multinode.py): WORLD_SIZE = devices x nodes
    nodes = int(os.environ.get("WORLD_SIZE", devices)) // devices
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        num_nodes=nodes,
        strategy="ddp" if devices * nodes > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    labels = predict_in_order(trainer, model, datamodule=datamodule)
    if trainer.is_global_zero:
        _write_csv(out, labels)
    if naive_out:
        naive = torch.cat(trainer.predict(model, datamodule=datamodule))
        if trainer.is_global_zero:
            _write_csv(naive_out, naive)


if __name__ == "__main__":
    try:
        main(int(sys.argv[1]), *sys.argv[2:])
    finally:
        close_process_group()
