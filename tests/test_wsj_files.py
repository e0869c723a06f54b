"""Safe loading of WSJ .npy files: malicious pickles refused, old files read, bad input named."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

from data_modules.errors import UserInputError
from data_modules.speech.frames.cache import build_or_load
from data_modules.speech.layouts.wsj import UnsafePickleError, read_utterances
from tests.helpers.wsj_corpus import object_array, save_split, write_corpus


class _RunsCode:
    """Unpickling this calls os.system: what a booby-trapped download would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _npy_with_payload(path, payload: bytes, shape=(1,)) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|O", "fortran_order": False, "shape": shape}
        )
        f.write(payload)


@pytest.mark.parametrize("where", ["inside_array", "whole_payload"])
def test_code_running_pickle_is_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    bad = tmp_path / "train.npy"
    if where == "inside_array":
        np.save(
            bad, object_array([np.zeros((2, 40), np.float32), _RunsCode(marker)]), allow_pickle=True
        )
    else:
        _npy_with_payload(bad, pickle.dumps(_RunsCode(marker), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"train\.npy.*(posix|os)\.system"):
        read_utterances(bad)
    assert not marker.exists()
    # The file really is dangerous: numpy's trusting loader runs it.
    np.load(bad, allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 3])
def test_numpy1_style_pickle_loads(tmp_path, protocol):
    """numpy 1.x names ``numpy.core.multiarray`` and wrote pickle protocol 3 (GLOBAL opcodes)."""
    utts = [np.arange(80, dtype=np.float32).reshape(2, 40), np.ones((3, 40), np.float32)]
    payload = pickle.dumps(object_array(utts), protocol=protocol)
    assert b"numpy._core.multiarray\n" in payload or b"numpy.core.multiarray\n" in payload
    payload = payload.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path = tmp_path / "old.npy"
    _npy_with_payload(path, payload, shape=(2,))
    got = read_utterances(path)
    assert len(got) == 2 and all(np.array_equal(a, b) for a, b in zip(got, utts, strict=True))


def test_plain_stacked_array_loads_without_pickle(tmp_path):
    arr = np.random.default_rng(0).normal(size=(3, 4, 40)).astype(np.float32)
    np.save(tmp_path / "x.npy", arr)
    got = read_utterances(tmp_path / "x.npy")
    assert len(got) == 3 and np.array_equal(got[2], arr[2])


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_every_npy_format_version_loads(tmp_path, version):
    utts = [np.arange(80, dtype=np.float32).reshape(2, 40), np.ones((3, 40), np.float32)]
    for name, arr in {"obj.npy": object_array(utts), "plain.npy": np.stack([utts[0]] * 2)}.items():
        with open(tmp_path / name, "wb") as f:
            np.lib.format.write_array(f, arr, version=version, allow_pickle=True)
        got = read_utterances(tmp_path / name)
        assert len(got) == 2 and np.array_equal(got[0], utts[0])


def test_corrupt_file_named(tmp_path):
    path = tmp_path / "dev.npy"
    buf = io.BytesIO()
    np.save(buf, object_array([np.zeros((2, 40), np.float32)]), allow_pickle=True)
    path.write_bytes(buf.getvalue()[:-20])
    with pytest.raises(ValueError, match=r"dev\.npy"):
        read_utterances(path)
    path.write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match=r"dev\.npy.*not a valid \.npy"):
        read_utterances(path)


def _corrupt(frames, labels, case):
    f, lab = list(frames), list(labels)
    if case == "width":
        f[2] = np.zeros((5, 39), np.float32)
    elif case == "length":
        lab[2] = lab[2][:-1]
    elif case == "label_high":
        lab[2] = lab[2].copy()
        lab[2][1] = 138
    elif case == "label_negative":
        lab[2] = lab[2].copy()
        lab[2][0] = -1
    elif case in ("nan", "inf"):
        f[2] = f[2].copy()
        f[2][1, 3] = np.nan if case == "nan" else np.inf
    elif case == "empty":
        f[2] = np.zeros((0, 40), np.float32)
    elif case == "count":
        lab = lab[:-1]
    return f, lab


@pytest.mark.parametrize(
    ("case", "file", "message"),
    [
        ("width", "train.npy", r"utterance 2 has shape \(5, 39\), expected \(T, 40\) as utter"),
        ("length", "train_labels.npy", r"utterance 2 has labels of shape \(4,\), expected \(5,\)"),
        ("label_negative", "train_labels.npy", r"utterance 2 frame 0 has label -1"),
        ("nan", "train.npy", r"utterance 2 has NaN/inf values \(first at frame 1\)"),
        ("inf", "train.npy", r"utterance 2 has NaN/inf"),
        ("empty", "train.npy", r"utterance 2 is empty"),
        ("count", "train_labels.npy", r"4 label arrays but .*train\.npy has 5 utterances"),
        # dev is read with the training data's inventory: 40 features, classes 0..137
        ("width", "dev.npy", r"utterance 2 has shape \(5, 39\), expected \(T, 40\) as the train"),
        ("label_high", "dev_labels.npy", r"utterance 2 frame 1 has label 138, expected 0..137 "
         r"\(the classes of the training labels, or of dev's up to the task's 138\)"),
    ],
)  # fmt: skip
def test_bad_input_names_file_and_utterance(tmp_path, case, file, message):
    corpus = write_corpus(tmp_path)
    split = file.split(".")[0].split("_")[0]
    save_split(tmp_path, split, *_corrupt(*corpus[split], case))
    inventory = None if split == "train" else build_or_load(tmp_path, "train").inventory("kaggle")
    with pytest.raises(UserInputError, match=rf"{tmp_path / file}: {message}"):
        build_or_load(tmp_path, split, inventory=inventory)


def test_missing_file_lists_what_was_expected(tmp_path):
    write_corpus(tmp_path)
    (tmp_path / "dev_labels.npy").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"dev_labels\.npy: missing\. Expected in .*"
        r"dev_labels\.npy, test\.npy \(found: dev\.npy, test\.npy, train\.npy",
    ):
        build_or_load(tmp_path, "dev")
    build_or_load(tmp_path, "test", need_labels=False)  # test has no labels, and needs none
