"""CIFAR-10 batch reading: the torchvision layout, safe unpickling, clear errors."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.images.cifar10 import load_cifar10
from data_modules.io.safe_pickle import UnsafePickleError


def test_load_train_and_test(cifar_dir):
    images, labels = load_cifar10(cifar_dir, train=True)
    assert images.shape == (100, 3, 32, 32) and images.dtype == np.uint8
    assert labels.shape == (100,) and labels.dtype == np.int64
    assert load_cifar10(cifar_dir, train=False)[0].shape == (20, 3, 32, 32)


def test_channel_planes_are_rgb(cifar_dir):
    folder = cifar_dir / "cifar-10-batches-py"
    entry = pickle.loads((folder / "test_batch").read_bytes())
    images, _ = load_cifar10(cifar_dir, train=False)
    # The flat row is 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32.
    np.testing.assert_array_equal(images[3, 1].ravel(), entry["data"][3, 1024:2048])


def test_bytes_keys_as_in_python2_pickles_read_with_bytes_encoding(cifar_dir):
    path = cifar_dir / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps({k.encode(): v for k, v in entry.items()}, protocol=2))
    np.testing.assert_array_equal(load_cifar10(cifar_dir, train=False)[1], entry["labels"])


def test_missing_batch_listed(cifar_dir):
    (cifar_dir / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(InputFileNotFoundError, match="data_batch_3") as err:
        load_cifar10(cifar_dir, train=True)
    assert "download: true" in str(err.value)


def test_truncated_pickle(cifar_dir):
    path = cifar_dir / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserInputError, match="not a readable CIFAR-10 batch") as err:
        load_cifar10(cifar_dir, train=True)
    assert str(path) in str(err.value)


def test_label_out_of_range(cifar_dir):
    path = cifar_dir / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(path.read_bytes())
    entry["labels"][5] = 10
    path.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(UserInputError, match="label 10 at index 5"):
        load_cifar10(cifar_dir, train=False)


def test_wrong_image_width(cifar_dir):
    path = cifar_dir / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(path.read_bytes())
    entry["data"] = entry["data"][:, :3000]
    path.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(UserInputError, match=r"expected uint8 \(N, 3072\)"):
        load_cifar10(cifar_dir, train=False)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_malicious_pickle_is_refused_and_does_not_run(cifar_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = cifar_dir / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({"data": _RunsCode(), "labels": []}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"test_batch.*system"):  # a UserInputError
        load_cifar10(cifar_dir, train=False)
    assert not (tmp_path / "PWNED_MARKER").exists()
