"""Tiny dataset files in the exact real formats (IDX, CIFAR-10 python pickles), for tests only."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_ENCODINGS = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encode an array as IDX: magic 0x0000 TT <ndim>, big-endian dims, then the data.

    The data is cast to the type code's encoding (uint8 by default, as MNIST has).
    """
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + np.ascontiguousarray(array, dtype=IDX_ENCODINGS[type_code]).tobytes()


def write_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> Path:
    data = idx_bytes(array, type_code)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_mnist(
    root: Path, n_train: int = 64, n_test: int = 32, gz: bool = True, seed: int = 0
) -> Path:
    """Four MNIST IDX files with learnable digits: each class is a bright pixel block."""
    rng = np.random.default_rng(seed)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label : 2 * label + 6, 4:24] = 250
        write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return root


def write_cifar10(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py``: 5 train batches and a test batch, ``per_batch`` images each."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = rng.integers(0, 10, per_batch)
        data = rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8)
        entry = {
            "batch_label": name,
            "labels": [int(v) for v in labels],
            "data": data,
            "filenames": [f"{name}_{i}.png" for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    (folder / "batches.meta").write_bytes(
        pickle.dumps(
            {
                "label_names": [
                    "airplane",
                    "automobile",
                    "bird",
                    "cat",
                    "deer",
                    "dog",
                    "frog",
                    "horse",
                    "ship",
                    "truck",
                ]
            },
            protocol=2,
        )
    )
    return root
