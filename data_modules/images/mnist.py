"""MNIST from its standard IDX files, in ``data_dir`` or torchvision's ``data_dir/MNIST/raw``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.images.datamodule import InMemoryImageDataModule
from data_modules.io.download import download_verified
from data_modules.io.idx import read_idx

MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FILES_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


def _candidates(data_dir: Path, stem: str) -> list[Path]:
    return [
        d / f"{stem}{ext}" for d in (data_dir, data_dir / "MNIST" / "raw") for ext in (".gz", "")
    ]


def find_mnist_file(data_dir: str | Path, stem: str) -> Path:
    """Locate ``stem`` (e.g. 'train-images-idx3-ubyte'), gzipped or not, or say where we looked."""
    for path in _candidates(Path(data_dir), stem):
        if path.is_file():
            return path
    if not Path(data_dir).is_dir():
        raise InputFileNotFoundError(
            f"MNIST data_dir {data_dir} does not exist; set download: true (fetches the four "
            f"IDX files from {MIRROR}) or copy them into {data_dir}"
        )
    raw = Path(data_dir) / "raw"
    if any(raw.glob(f"{stem}*")):  # torchvision's data_dir/MNIST given as data_dir
        raise InputFileNotFoundError(
            f"MNIST file '{stem}' is in {raw}, not in {data_dir}: set data_dir: {raw}"
        )
    missing = [s for s in (n.removesuffix(".gz") for n in FILES_MD5) if not _exists(data_dir, s)]
    looked = ", ".join(str(p) for p in _candidates(Path(data_dir), stem))
    raise InputFileNotFoundError(
        f"MNIST file '{stem}' not found; looked for {looked}. Missing: {', '.join(missing)}. "
        f"Set download: true (fetches {MIRROR}<file>.gz and checks its MD5) or copy the "
        f"four IDX files into {data_dir}"
    )


def _exists(data_dir: str | Path, stem: str) -> bool:
    return any(p.is_file() for p in _candidates(Path(data_dir), stem))


def download_mnist(data_dir: str | Path) -> None:
    """Fetch the four official gzipped IDX files that are not there yet, checking MD5s."""
    for name, md5 in FILES_MD5.items():
        if not _exists(data_dir, name.removesuffix(".gz")):
            download_verified(MIRROR + name, Path(data_dir) / name, md5)


def load_mnist(data_dir: str | Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 28, 28), int64 labels (N,)) of the training or test files."""
    prefix = "train" if train else "t10k"
    images_path = find_mnist_file(data_dir, f"{prefix}-images-idx3-ubyte")
    labels_path = find_mnist_file(data_dir, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1, expected_type=0x08)  # unsigned bytes
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise UserInputError(
            f"{images_path}: images are {images.dtype} {images.shape[1:]}, expected uint8 (28, 28)"
        )
    if len(images) != len(labels):
        raise UserInputError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise UserInputError(
            f"{labels_path}: label {labels[bad[0]]} at index {bad[0]}, expected 0..9"
        )
    return images, labels.astype(np.int64)


class MNISTDataModule(InMemoryImageDataModule):
    """MNIST digits, 1x28x28, 10 classes; ``augment`` shifts digits by up to 2 pixels."""

    num_classes = 10
    input_shape = (1, 28, 28)
    mean = (0.1307,)
    std = (0.3081,)
    crop_padding = 2

    def prepare_data(self) -> None:
        if self.download:
            download_mnist(self.data_dir)

    def load_split(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        images, labels = load_mnist(self.data_dir, train)
        return images[:, None], labels
