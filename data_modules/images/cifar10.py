"""CIFAR-10 from the official python batches in ``data_dir/cifar-10-batches-py`` (torchvision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.images.datamodule import InMemoryImageDataModule
from data_modules.io.download import download_verified, extract_tar
from data_modules.io.safe_pickle import UnsafePickleError, safe_load

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (uint8 (N, 3, 32, 32), int64 (N,)), validated."""
    try:
        with open(path, "rb") as f:
            entry = safe_load(f, str(path), encoding="latin1")  # Python 2 pickles
    except FileNotFoundError as err:
        raise InputFileNotFoundError(f"{path}: file not found") from err
    except UnsafePickleError:
        raise
    except Exception as err:  # truncated or corrupt pickles raise many different types
        raise UserInputError(
            f"{path}: not a readable CIFAR-10 batch ({type(err).__name__}: {err})"
        ) from err
    if isinstance(entry, dict):
        entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise UserInputError(f"{path}: expected a dict with 'data' and 'labels' entries")
    data, labels = entry["data"], np.asarray(entry["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,):
        shape = getattr(data, "shape", None)
        raise UserInputError(
            f"{path}: 'data' is {type(data).__name__} {shape}, expected uint8 (N, 3072)"
        )
    if labels.shape != (len(data),):
        raise UserInputError(f"{path}: {len(data)} images but {labels.size} labels")
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise UserInputError(f"{path}: label {labels[bad[0]]} at index {bad[0]}, expected 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(data_dir: str | Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 3, 32, 32), int64 labels (N,)) of the training or test batches."""
    folder = Path(data_dir) / FOLDER
    names = TRAIN_BATCHES if train else TEST_BATCHES
    missing = [n for n in TRAIN_BATCHES + TEST_BATCHES if not (folder / n).is_file()]
    if any(n in missing for n in names):
        if all((Path(data_dir) / n).is_file() for n in TRAIN_BATCHES + TEST_BATCHES):
            raise InputFileNotFoundError(
                f"CIFAR-10 data_dir {data_dir} holds the batches themselves; data_dir is the "
                f"folder above {FOLDER}: set data_dir: {Path(data_dir).parent}"
            )
        raise InputFileNotFoundError(
            f"CIFAR-10 batches missing in {folder}: {', '.join(missing)}. Set download: true "
            f"(fetches {URL}, MD5 {MD5}) or unpack cifar-10-python.tar.gz into {data_dir}"
        )
    parts = [read_cifar_batch(folder / n) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def download_cifar10(data_dir: str | Path) -> None:
    """Fetch and unpack the official archive unless every batch file is already there."""
    folder = Path(data_dir) / FOLDER
    if all((folder / n).is_file() for n in TRAIN_BATCHES + TEST_BATCHES):
        return
    archive = download_verified(URL, Path(data_dir) / "cifar-10-python.tar.gz", MD5)
    extract_tar(archive, Path(data_dir))


class CIFAR10DataModule(InMemoryImageDataModule):
    """CIFAR-10, 3x32x32, 10 classes; ``augment`` = random crop (pad 4) + horizontal flip."""

    num_classes = 10
    input_shape = (3, 32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    crop_padding = 4
    hflip = True

    def prepare_data(self) -> None:
        if self.download:
            download_cifar10(self.data_dir)

    def load_split(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        return load_cifar10(self.data_dir, train)
