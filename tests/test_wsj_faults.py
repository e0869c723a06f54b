"""WSJ files and cache as a user meets them: damaged caches, full disks, wrong files, one line."""

from __future__ import annotations

import errno
import json
import runpy
import sys
import warnings

import numpy as np
import pytest

import data_modules.errors as errors
import data_modules.speech.frames.cache as wsj_cache
from data_modules.errors import EXIT_BAD_INPUT, DiskFullError, UserInputError
from data_modules.speech.frames.cache import build_or_load
from data_modules.speech.frames.datamodule import SpeechFramesDataModule
from data_modules.speech.sequences.datamodule import UtteranceSequencesDataModule
from tests.helpers.wsj_corpus import write_corpus


def _truncate(path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


DAMAGE = {
    "truncated frames": lambda e: _truncate(e / "frames.npy"),
    "truncated labels": lambda e: _truncate(e / "labels.npy", 90),
    "garbled meta": lambda e: (e / "meta.json").write_text('{"n_frames": 45, "key": '),
    "edited meta": lambda e: (e / "meta.json").write_text(
        (e / "meta.json").read_text().replace('"n_utterances": 5', '"n_utterances": 4')
    ),
    "missing offsets": lambda e: (e / "offsets.npy").unlink(),
    "frames of another shape": lambda e: np.save(e / "frames.npy", np.zeros((40, 45), "f4")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_cache_entry_is_rebuilt_with_a_warning(tmp_path, damage):
    corpus = write_corpus(tmp_path)
    entry = build_or_load(tmp_path, "train")
    DAMAGE[damage](entry.path)
    with pytest.warns(UserWarning, match=rf"{entry.path}: damaged WSJ cache entry \(.+\); rebuild"):
        rebuilt = build_or_load(tmp_path, "train")
    assert rebuilt.path == entry.path
    np.testing.assert_array_equal(rebuilt.open_frames(), np.concatenate(corpus["train"][0]))
    np.testing.assert_array_equal(rebuilt.open_labels(), np.concatenate(corpus["train"][1]))
    assert rebuilt.meta["n_utterances"] == 5
    assert not list(tmp_path.glob(".wsj_cache/.tmp-*"))
    with warnings.catch_warnings():  # sound now: reused silently
        warnings.simplefilter("error")
        assert build_or_load(tmp_path, "train").path == entry.path


def test_the_datamodule_trains_on_after_a_damaged_entry(tmp_path):
    write_corpus(tmp_path)
    dm = SpeechFramesDataModule(str(tmp_path), context=2, resident=False)
    dm.setup("fit")
    expected = dm.datasets["dev"].__getitems__(list(range(16)))
    path = dm.datasets["dev"].entry.path
    (path / "meta.json").write_text("not json")
    fresh = SpeechFramesDataModule(str(tmp_path), context=2, resident=False)
    with pytest.warns(UserWarning, match="meta.json is unreadable"):
        fresh.setup("fit")
    got = fresh.datasets["dev"].__getitems__(list(range(16)))
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("how", ["ENOSPC", "numpy short write"])
def test_full_disk_while_building_names_the_file(tmp_path, monkeypatch, how):
    write_corpus(tmp_path)

    def full(path, *args):
        path.write_bytes(b"\x93NUMPY partial")
        if how == "ENOSPC":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise OSError("1200 requested and 64 written")  # what numpy's tofile says, no errno

    class _Usage:
        free = 0

    monkeypatch.setattr(wsj_cache, "_write_frames", full)
    monkeypatch.setattr(errors.shutil, "disk_usage", lambda path: _Usage())
    with pytest.raises(DiskFullError, match=r"\.wsj_cache/train-.*/frames\.npy: the disk is full"):
        build_or_load(tmp_path, "train")
    assert not (tmp_path / ".wsj_cache").exists()  # nothing partial, not even the folder


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    write_corpus(tmp_path)

    def broken(path, *args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(wsj_cache, "_write_frames", broken)
    with pytest.raises(OSError, match="Input/output error") as error:
        build_or_load(tmp_path, "train")
    assert not isinstance(error.value, DiskFullError)


def test_one_plain_frames_array_says_what_the_file_must_be(tmp_path):
    write_corpus(tmp_path)
    np.save(tmp_path / "train.npy", np.zeros((50, 40), np.float32))
    with pytest.raises(
        UserInputError,
        match=r"train\.npy: holds one plain float32 array of shape \(50, 40\), not utterances: "
        r"it must be a numpy object array of utterances, each an array of \(T, D\) frames",
    ):
        build_or_load(tmp_path, "train")
    write_corpus(tmp_path)
    np.save(tmp_path / "train_labels.npy", np.zeros(45, np.int64))  # one (N,) labels array
    with pytest.raises(UserInputError, match=r"each an array of \(T,\) labels"):
        build_or_load(tmp_path, "train")


def test_demo_source_on_a_folder_of_kaggle_files_points_at_source_kaggle(tmp_path):
    write_corpus(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    dm = SpeechFramesDataModule(str(tmp_path), source="demo")
    with pytest.raises(
        UserInputError, match=r"holds Kaggle WSJ files \(train\.npy.*--data\.source kaggle"
    ):
        dm.prepare_data()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # untouched


def test_demo_corpus_command_reports_one_line_and_exit_status_2(tmp_path, monkeypatch, capsys):
    write_corpus(tmp_path)
    argv = ["demo_corpus", "--out", str(tmp_path), "--utterances", "3"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("data_modules.speech.demo_corpus", run_name="__main__", alter_sys=False)
    assert exit_.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "holds Kaggle WSJ files" in err[0]


def test_bad_settings_are_user_input_errors(tmp_path):
    for bad in ({"context": -1}, {"pad": "reflect"}, {"resident": "sometimes"}):
        with pytest.raises(UserInputError):
            SpeechFramesDataModule(str(tmp_path), **bad)
    for key, value in (("val_fraction", float("nan")), ("val_fraction", 1.0), ("split_seed", -1)):
        with pytest.raises(UserInputError, match=f"{key}="):  # refused when made, not when read
            SpeechFramesDataModule(str(tmp_path), **{key: value})
    for dm in (SpeechFramesDataModule, UtteranceSequencesDataModule):
        for key in ("demo_seed", "demo_workers", "demo_utterances"):
            with pytest.raises(UserInputError, match=f"{dm.__name__}: {key}=-1, expected at least"):
                dm(str(tmp_path), **{key: -1})
    write_corpus(tmp_path)
    entry = build_or_load(tmp_path, "dev")
    meta = json.loads((entry.path / "meta.json").read_text())
    assert meta["checksum"] == wsj_cache._checksum(meta)
