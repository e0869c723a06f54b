"""LibriSpeech HW1P2 and NTU libriphone layouts behind the one frame pipeline: reading, the
class inventory, auto-detection, and every bad input named in one line."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from data_modules.errors import UserInputError
from data_modules.speech.frames.datamodule import SpeechFramesDataModule
from data_modules.speech.layouts.frames import detect_format
from data_modules.speech.layouts.libriphone import split_ids
from tests.helpers.frame_corpora import PARTITIONS, PHONES, write_libriphone, write_librispeech
from tests.helpers.wsj_corpus import naive_windows, save_split, write_corpus


def _all(ds) -> tuple[torch.Tensor, ...]:
    x, *rest = ds.__getitems__(list(range(len(ds))))
    return (x.flatten(1), *rest)


@pytest.mark.parametrize("resident", [False, True])
def test_librispeech_frames_symbols_and_inventory(tmp_path, resident):
    corpus = write_librispeech(tmp_path, test_transcripts=True)
    dm = SpeechFramesDataModule(str(tmp_path), context=2, normalize="none", resident=resident)
    assert dm.format == "librispeech"
    inventory = dm.inventory
    assert inventory.symbols == tuple(sorted(PHONES)) and inventory.feature_dim == 28
    assert dm.num_classes == len(PHONES) and dm.input_shape == (5, 28)
    dm.setup("fit")
    dm.setup("test")
    for split in ("train", "dev", "test"):
        frames, symbols = corpus[split]
        x, y = _all(dm.datasets[split])
        np.testing.assert_array_equal(x.numpy(), naive_windows(frames, 2, "zero"))
        expected = [inventory.symbols.index(s) for utt in symbols for s in utt]  # [SOS]/[EOS] gone
        assert y.tolist() == expected, split
    assert dm._test_split() == "test"  # test-clean has transcripts here, so it is a real test


def test_libriphone_validation_comes_out_of_train_and_test_keeps_its_order(tmp_path):
    corpus = write_libriphone(tmp_path)
    dm = SpeechFramesDataModule(str(tmp_path), context=1, normalize="none", val_fraction=0.2)
    assert dm.format == "libriphone" and dm.num_classes == 41 and dm.input_shape == (3, 39)
    dm.setup("fit")
    dm.setup("predict")
    ids, frames, labels = corpus["train"]
    train_ids = split_ids(tmp_path, "train", 0.2, 0)
    dev_ids = split_ids(tmp_path, "dev", 0.2, 0)
    assert len(dev_ids) == 2 and set(train_ids).isdisjoint(dev_ids)
    assert sorted(train_ids + dev_ids) == sorted(ids)
    assert split_ids(tmp_path, "dev", 0.2, 1) != dev_ids  # another split_seed, another share
    for name, chosen in (("train", train_ids), ("dev", dev_ids)):
        rows = [ids.index(u) for u in chosen]
        x, y = _all(dm.datasets[name])
        np.testing.assert_array_equal(
            x.numpy(), naive_windows([frames[i] for i in rows], 1, "zero")
        )
        assert y.tolist() == np.concatenate([labels[i] for i in rows]).tolist()
    test_ids, test_frames, _ = corpus["test"]
    (x,) = dm.datasets["test-unlabelled"].__getitems__(
        list(range(len(dm.datasets["test-unlabelled"])))
    )
    np.testing.assert_array_equal(x.flatten(1).numpy(), naive_windows(test_frames, 1, "zero"))
    assert dm._test_split() == "dev"  # no test labels: trainer.test evaluates on dev


def test_auto_detection_says_what_it_found(tmp_path, caplog):
    write_librispeech(tmp_path / "ls")
    write_libriphone(tmp_path / "lp")
    write_corpus(tmp_path / "wsj")
    with caplog.at_level(logging.INFO):
        for name, layout in (("ls", "librispeech"), ("lp", "libriphone"), ("wsj", "kaggle")):
            assert SpeechFramesDataModule(str(tmp_path / name)).format == layout
            assert f"found the {layout} layout" in caplog.text
    assert detect_format(tmp_path / "ls")[1] == [f"{p}/mfcc" for p in PARTITIONS.values()]
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError,
        match=r"empty: no frame-classification data found.*kaggle \(train\.npy.*libriphone",
    ):
        detect_format(tmp_path / "empty")
    write_corpus(tmp_path / "ls")  # Kaggle files next to LibriSpeech partitions
    with pytest.raises(
        UserInputError,
        match=r"several layouts: kaggle .*librispeech.*--data\.source kaggle or librispeech",
    ):
        detect_format(tmp_path / "ls")


# -- bad input: one line naming the file ----------------------------------------------------------
def _librispeech_case(root, case):
    corpus = write_librispeech(root)
    train = root / PARTITIONS["train"]
    names = sorted(p.name for p in (train / "mfcc").iterdir())
    if case == "missing partition":
        for kind in ("mfcc", "transcript"):
            for p in (root / "dev-clean" / kind).iterdir():
                p.unlink()
            (root / "dev-clean" / kind).rmdir()
        return (
            "dev",
            r"dev-clean/mfcc: missing partition\. Expected in .*train-clean-100/, dev-clean/",
        )
    if case == "length":
        t = len(corpus["train"][0][1])
        np.save(train / "transcript" / names[1], np.array(["[SOS]", *["AA"] * (t + 1), "[EOS]"]))
        return (
            "train",
            rf"{names[1]}: {t + 3} symbols for the {t} frames of .*{names[1]} "
            rf"\(expected {t + 2}, with \[SOS\] and \[EOS\]",
        )
    if case == "unknown symbol":
        dev = root / PARTITIONS["dev"] / "transcript"
        name = sorted(p.name for p in dev.iterdir())[0]
        np.save(dev / name, np.array(["[SOS]", "AA", "AA", "ZH", "B", "K", "[EOS]"]))
        return (
            "dev",
            rf"dev-clean/transcript/{name} has symbol 'ZH' at position 2, which is not in the "
            "inventory",
        )
    if case == "dimension":
        np.save(train / "mfcc" / names[2], np.zeros((12, 27), np.float32))
        return (
            "train",
            rf"{names[2]} has shape \(12, 27\), expected \(T, 28\) as {names[0]}, the first file",
        )
    if case == "dimension across partitions":
        dev = root / PARTITIONS["dev"] / "mfcc"
        name = sorted(p.name for p in dev.iterdir())[1]
        np.save(dev / name, np.zeros((7, 13), np.float32))
        return "dev", rf"{name} has shape \(7, 13\), expected \(T, 28\) as the training data"
    if case == "unpaired":
        (train / "mfcc" / names[0]).unlink()
        return "train", rf"transcript/{names[0]}: no MFCC file"
    if case == "pickled code":
        arr = np.empty(1, dtype=object)
        arr[0] = print
        np.save(train / "mfcc" / names[0], arr, allow_pickle=True)
        return "train", rf"mfcc/{names[0]}: .*(refus|print)"
    raise AssertionError(case)


def _libriphone_case(root, case):
    corpus = write_libriphone(root)
    ids, frames, labels = corpus["train"]
    lines = (root / "train_labels.txt").read_text().splitlines()
    if case == "missing feature file":
        (root / "feat" / "train" / f"{ids[4]}.pt").unlink()
        return "train", rf"feat/train/{ids[4]}\.pt: missing, but .*train_split\.txt lists it"
    if case == "length":
        lines[1] = lines[1] + " 3"
        (root / "train_labels.txt").write_text("\n".join(lines))
        return "train", rf"train_labels\.txt: utterance '{ids[1]}' has 4 labels for the 3 frames"
    if case == "not an integer":
        lines[3] = lines[3].replace(" ", " x", 1)
        (root / "train_labels.txt").write_text("\n".join(lines))
        return (
            "train",
            rf"train_labels\.txt: line 4 \({ids[3]}\) has 'x\d+', expected integer classes",
        )
    if case == "dimension":
        torch.save(torch.zeros(5, 40), root / "feat" / "train" / f"{ids[3]}.pt")
        return "train", rf"{ids[3]}\.pt has shape \(5, 40\), expected \(T, 39\)"
    if case == "code in a .pt":
        torch.save({"x": torch.zeros(3, 39), "f": print}, root / "feat" / "train" / f"{ids[0]}.pt")
        return (
            "train",
            rf"{ids[0]}\.pt: holds Python objects other than tensors \(Unsupported global",
        )
    if case == "missing labels":
        (root / "train_labels.txt").unlink()
        return "train", r"train_labels\.txt: missing"
    if case == "no line":
        (root / "train_labels.txt").write_text("\n".join(lines[:-1]))
        return "train", rf"train_labels\.txt: no line for utterance '{ids[-1]}'"
    raise AssertionError(case)


LIBRISPEECH_CASES = ["missing partition", "length", "unknown symbol", "dimension",
                     "dimension across partitions", "unpaired", "pickled code"]  # fmt: skip
LIBRIPHONE_CASES = ["missing feature file", "length", "not an integer", "dimension",
                    "code in a .pt", "missing labels", "no line"]  # fmt: skip


@pytest.mark.parametrize(
    ("layout", "case"),
    [("librispeech", c) for c in LIBRISPEECH_CASES] + [("libriphone", c) for c in LIBRIPHONE_CASES],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path, layout, case):
    write = _librispeech_case if layout == "librispeech" else _libriphone_case
    split, message = write(tmp_path, case)
    dm = SpeechFramesDataModule(str(tmp_path), source=layout, context=1)
    with pytest.raises(UserInputError, match=message) as error:
        dm.setup("fit")  # reads train (the inventory), then dev
    assert "\n" not in str(error.value)
    assert split in ("train", "dev")


def test_a_named_source_that_does_not_match_the_folder_says_which_layout_it_holds(tmp_path):
    write_libriphone(tmp_path)
    dm = SpeechFramesDataModule(str(tmp_path), source="kaggle")
    with pytest.raises(
        FileNotFoundError,
        match=r"train\.npy: missing.*holds the libriphone layout .*--data\.source libriphone",
    ):
        dm.num_classes  # noqa: B018


def test_the_classes_are_those_of_train_and_dev(tmp_path):
    """A training subset that lacks the highest class still reads valid dev files: dev is
    labelled data too (up to the Kaggle task's 138 classes; beyond, dev is refused)."""
    kaggle = tmp_path / "kaggle"
    corpus = write_corpus(kaggle)
    frames, labels = corpus["train"]
    save_split(kaggle, "train", frames, [np.minimum(y, 136) for y in labels])  # no class 137
    dev_frames, dev_labels = corpus["dev"]
    dev_labels[0][0] = 137
    save_split(kaggle, "dev", dev_frames, dev_labels)
    dm = SpeechFramesDataModule(str(kaggle), context=1, source="kaggle")
    assert dm.num_classes == 138
    dm.setup("fit")
    assert int(dm.datasets["dev"].__getitems__([0])[1][0]) == 137
