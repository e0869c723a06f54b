"""MNIST IDX reading: both layouts, gz or not, and a clear error for every kind of bad file."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest

from data_modules.errors import UserInputError
from data_modules.images.mnist import load_mnist
from data_modules.io.idx import read_idx
from tests.helpers.datafiles import idx_bytes, write_idx, write_mnist


def test_roundtrip_gz_and_plain(tmp_path):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    for name in ("a-idx3-ubyte.gz", "a-idx3-ubyte"):
        np.testing.assert_array_equal(read_idx(write_idx(tmp_path / name, array)), array)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_torchvision_layout(tmp_path, gz):
    write_mnist(tmp_path / "MNIST" / "raw", n_train=10, n_test=5, gz=gz)
    images, labels = load_mnist(tmp_path, train=True)
    assert images.shape == (10, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.max() <= 9
    assert load_mnist(tmp_path, train=False)[0].shape == (5, 28, 28)


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(tmp_path, train=True)
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "MNIST" / "raw") in message
    assert "download: true" in message


def test_truncated_file(mnist_dir):
    path = mnist_dir / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(ValueError, match="truncated or corrupt") as err:
        load_mnist(mnist_dir, train=True)
    assert str(path) in str(err.value)


def test_corrupt_gzip(mnist_dir):
    path = mnist_dir / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="cannot read") as err:
        load_mnist(mnist_dir, train=True)
    assert str(path) in str(err.value)


def test_wrong_magic(mnist_dir):
    path = mnist_dir / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[2] = 0x42
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="bad magic number 0x00004203"):
        load_mnist(mnist_dir, train=False)


def test_labels_passed_as_images_rejected(mnist_dir):
    shutil.copy(mnist_dir / "train-labels-idx1-ubyte.gz", mnist_dir / "train-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match="1 dimensions, expected 3"):
        load_mnist(mnist_dir, train=True)


def test_count_mismatch_names_both_files(mnist_dir):
    write_idx(mnist_dir / "train-labels-idx1-ubyte.gz", np.zeros(63, dtype=np.uint8))
    with pytest.raises(ValueError, match="64 images but .* has 63 labels"):
        load_mnist(mnist_dir, train=True)


def test_label_out_of_range_names_index(mnist_dir):
    labels = np.zeros(64, dtype=np.uint8)
    labels[17] = 12
    write_idx(mnist_dir / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match="label 12 at index 17"):
        load_mnist(mnist_dir, train=True)


def test_idx_header_only(tmp_path):
    (tmp_path / "x-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8))[:6])
    with pytest.raises(ValueError, match="truncated header"):
        read_idx(tmp_path / "x-idx1-ubyte")


def test_signed_labels_are_refused_naming_the_file(mnist_dir):
    """Issue 13.6: an int8 (0x09) label file with a -1 used to pass and fail later in training."""
    path = mnist_dir / "train-labels-idx1-ubyte.gz"
    labels = np.zeros(64, np.int8)
    labels[3] = -1
    write_idx(path, labels, type_code=0x09)
    with pytest.raises(UserInputError, match=r"IDX type 0x09 \(signed byte\), expected 0x08"):
        load_mnist(mnist_dir, train=True)
    with pytest.raises(UserInputError, match=str(path)):
        load_mnist(mnist_dir, train=True)


@pytest.mark.parametrize("type_code", [0x0B, 0x0C, 0x0D, 0x0E])
def test_non_standard_label_types_are_refused(mnist_dir, type_code):
    path = mnist_dir / "t10k-labels-idx1-ubyte.gz"
    write_idx(path, np.arange(32) % 10, type_code=type_code)  # values in 0..9 all the same
    np.testing.assert_array_equal(read_idx(path), np.arange(32) % 10)  # a valid IDX file
    with pytest.raises(UserInputError, match=rf"{path}: IDX type 0x{type_code:02x} .*, expected"):
        load_mnist(mnist_dir, train=False)


def test_header_whose_dimensions_overflow_int64_names_the_file(mnist_dir, tmp_path):
    """Issue 13.7: (2^22)^3 wrapped to 0 in int64, passed the size check, failed in reshape."""
    path = mnist_dir / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">BBBB3I", 0, 0, 0x08, 3, *[1 << 22] * 3)))
    with pytest.raises(UserInputError, match="truncated or corrupt") as err:
        load_mnist(mnist_dir, train=True)
    assert str(path) in str(err.value) and str(1 << 66) in str(err.value)
    four = tmp_path / "x-idx4-ubyte"  # 65536^4 = 2^64, with 8 bytes of data
    four.write_bytes(struct.pack(">BBBB4I", 0, 0, 0x08, 4, *[1 << 16] * 4) + bytes(8))
    with pytest.raises(UserInputError, match=f"{four}: header says shape"):
        read_idx(four)


def test_every_idx_problem_is_a_user_input_error(tmp_path):
    (tmp_path / "short").write_bytes(b"\x00\x00")
    (tmp_path / "magic").write_bytes(b"\x01\x00\x08\x01")
    (tmp_path / "x.gz").write_bytes(b"not gzip")
    for name in ("short", "magic", "x.gz"):
        with pytest.raises(UserInputError, match=str(tmp_path / name)):
            read_idx(tmp_path / name)
