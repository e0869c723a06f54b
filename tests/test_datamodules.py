"""Image DataModules: seeded splits, per-batch device transforms, verified downloads."""

from __future__ import annotations

import hashlib

import pytest
import torch

from data_modules.batches.batched import BatchedTensorDataset
from data_modules.errors import ReportedError, UserInputError
from data_modules.images.cifar10 import CIFAR10DataModule
from data_modules.images.datamodule import split_sizes
from data_modules.images.mnist import MNISTDataModule
from data_modules.io.download import download_verified
from data_modules.synthetic import SyntheticClustersDataModule
from tests.helpers.cuda import needs_cuda


def test_split_sizes_count_and_fraction():
    assert split_sizes(100, 10) == (90, 10)
    assert split_sizes(100, 0.25) == (75, 25)
    assert split_sizes(100, 0) == (100, 0)
    with pytest.raises(ValueError, match="leaves no training data"):
        split_sizes(100, 100)
    with pytest.raises(ValueError, match="fraction must be in"):
        split_sizes(100, 1.5)


def test_bad_settings_are_user_input_errors(cifar_dir):
    """Each reaches the user as one ``error: ...`` line with exit status 2 (data_modules.errors)."""
    with pytest.raises(UserInputError, match="leaves no training data"):
        split_sizes(100, 100)
    with pytest.raises(UserInputError, match=r"mean needs 3 values"):
        CIFAR10DataModule(str(cifar_dir), mean=(0.5,))
    dm = CIFAR10DataModule(str(cifar_dir), val_split=0)
    dm.setup("fit")
    with pytest.raises(UserInputError, match="val_split=0 leaves no validation split"):
        dm.val_dataloader()
    with pytest.raises(UserInputError, match="num_classes=1, expected at least 2"):
        SyntheticClustersDataModule(num_classes=1)
    with pytest.raises(UserInputError, match="num_train=0"):
        SyntheticClustersDataModule(num_train=0)


def _labels(dm, split):
    return dm.datasets[split].tensors[1]


def test_split_is_seeded_disjoint_and_complete(cifar_dir):
    a, b, c = (CIFAR10DataModule(str(cifar_dir), val_split=0.2, seed=s) for s in (1, 1, 2))
    for dm in (a, b, c):
        dm.setup("fit")
    assert len(a.datasets["train"]) == 80 and len(a.datasets["val"]) == 20
    assert torch.equal(a.datasets["val"].tensors[0], b.datasets["val"].tensors[0])
    assert not torch.equal(a.datasets["val"].tensors[0], c.datasets["val"].tensors[0])
    rows = torch.cat([a.datasets["train"].tensors[0], a.datasets["val"].tensors[0]]).flatten(1)
    assert len({tuple(r.tolist()) for r in rows}) == 100  # no image lost or duplicated
    assert len(a.datasets["test"]) == 20


def test_batches_are_uint8_until_transferred(mnist_dir):
    dm = MNISTDataModule(str(mnist_dir), val_split=16, batch_size=8)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (8, 1, 28, 28) and y.dtype == torch.int64
    out, y2 = dm.on_after_batch_transfer((x, y), 0)
    expected = (x.float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(out, expected)  # no trainer: evaluation transform, no augmentation
    assert torch.equal(y, y2)


def test_mean_std_override_for_imagenet_pretrained_backbones(cifar_dir):
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    dm = CIFAR10DataModule(str(cifar_dir), val_split=0, mean=imagenet[0], std=imagenet[1])
    dm.setup("fit")
    x, _ = dm.datasets["train"].__getitems__(list(range(4)))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in imagenet)
    torch.testing.assert_close(dm.transform(x, training=False), (x.float() / 255 - mean) / std)
    assert CIFAR10DataModule.mean == (0.4914, 0.4822, 0.4465)  # the class default is untouched
    with pytest.raises(ValueError, match=r"mean needs 3 values \(one per channel\)"):
        CIFAR10DataModule(str(cifar_dir), mean=(0.5,))
    with pytest.raises(ValueError, match="std must be > 0"):
        MNISTDataModule("x", std=(0.0,))
    for bad in ({"std": (float("nan"),)}, {"mean": (float("inf"),)}):
        with pytest.raises(UserInputError, match=f"{next(iter(bad))} must be finite"):
            MNISTDataModule("x", **bad)  # NaN or inf would normalise every batch to NaN


def test_augmentation_only_while_training(cifar_dir):
    dm = CIFAR10DataModule(str(cifar_dir), val_split=0, augment=True)
    dm.setup("fit")
    x, _ = dm.datasets["train"].__getitems__(list(range(32)))
    torch.manual_seed(0)
    train = dm.transform(x, training=True)
    evaluation = dm.transform(x, training=False)
    assert not torch.equal(train, evaluation)
    assert torch.equal(evaluation, dm.transform(x, training=False))


def test_download_verifies_md5_and_leaves_nothing_partial(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"dataset bytes")
    good = hashlib.md5(b"dataset bytes").hexdigest()
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(ReportedError, match="expected 0{32}"):  # exit 1: try again
        download_verified(source.as_uri(), dest, "0" * 32)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert download_verified(source.as_uri(), dest, good).read_bytes() == b"dataset bytes"
    dest.write_bytes(b"tampered")
    with pytest.raises(UserInputError, match="exists but its MD5"):
        download_verified(source.as_uri(), dest, good)


def test_batched_gather_returns_the_indexed_rows_in_order():
    """The row-wise gather equals plain indexing: any order, repeated indices, every dtype."""
    images = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    labels = torch.randint(0, 10, (50,))
    indices = [49, 0, 7, 7, 23, 1]
    got_x, got_y = BatchedTensorDataset(images, labels).__getitems__(indices)
    assert torch.equal(got_x, images[indices]) and torch.equal(got_y, labels[indices])
    assert got_x.dtype == torch.uint8 and got_y.dtype == labels.dtype


@needs_cuda
def test_gpu_resident_batches_match_the_cpu_ones():
    """Index batches reach a GPU-resident dataset through pinned memory, without blocking."""
    x = torch.arange(600, dtype=torch.uint8).reshape(200, 3)
    y = torch.arange(200)
    on_cpu = BatchedTensorDataset(x, y)
    on_gpu = on_cpu.to("cuda")
    indices = torch.randperm(200)[:64].tolist()
    pairs = zip(on_gpu.__getitems__(indices), on_cpu.__getitems__(indices), strict=True)
    for got, expected in pairs:
        assert got.is_cuda and torch.equal(got.cpu(), expected)


@pytest.mark.parametrize("noise", [-1.0, float("nan"), float("inf")])
def test_synthetic_noise_must_be_finite_and_not_negative(noise):
    with pytest.raises(UserInputError, match=f"noise={noise}, expected a finite value >= 0"):
        SyntheticClustersDataModule(noise=noise)
