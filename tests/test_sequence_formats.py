"""The HW3P2 readers: each layout, auto-detection, and the one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_modules.errors import UserInputError
from data_modules.speech.checks import Inventory
from data_modules.speech.demo_corpus.layouts import _object_array
from data_modules.speech.layouts import sequences as formats
from data_modules.speech.sequences.datamodule import UtteranceSequencesDataModule
from tests.helpers.ctc_corpus import SYMBOLS, utterances, write_librispeech, write_wsj


def test_wsj_layout_reads_frames_and_sequences(tmp_path):
    root = write_wsj(tmp_path)
    assert formats.detect_format(root)[0] == "wsj"
    data, inventory = formats.read_split("wsj", root, "train", True, None)
    expected = utterances(24, 40, 0)
    assert len(data.frames) == 24 and data.feature_dim == 40
    np.testing.assert_array_equal(data.targets[3], expected[3][1])
    assert inventory.symbols[:2] == ("+BREATH+", "+COUGH+") and inventory.codes[36] == "."
    test, _ = formats.read_split("wsj", root, "test", False, inventory)
    assert test.targets is None and len(test.frames) == 6


def test_librispeech_layout_drops_sos_eos_and_takes_the_inventory_from_train(tmp_path):
    root = write_librispeech(tmp_path)
    assert formats.detect_format(root)[0] == "librispeech"
    data, inventory = formats.read_split("librispeech", root, "train", True, None)
    assert inventory.symbols == tuple(sorted(SYMBOLS)) and inventory.feature_dim == 28
    assert dict(zip(inventory.symbols, inventory.codes, strict=True))["[SIL]"] == "-"
    first = sorted((root / "train-clean-100" / "transcript").glob("*.npy"))[0]
    symbols = np.load(first)[1:-1]
    assert [inventory.symbols[i] for i in data.targets[0]] == list(symbols)
    dev, _ = formats.read_split("librispeech", root, "dev", True, inventory)
    assert len(dev.frames) == 6


def test_datamodule_names_the_layout_and_pads_batches(tmp_path, capsys):
    dm = UtteranceSequencesDataModule(str(write_wsj(tmp_path)), batch_size=4, resident=False)
    assert dm.num_classes == 46 and dm.input_shape == (40,)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    lengths = batch.host_lengths
    assert list(lengths) == sorted(lengths, reverse=True)  # evaluation walks by length
    assert batch.x.shape == (4, lengths.max(), 40)
    assert float(batch.x[-1, lengths[-1] :].abs().sum()) == 0.0  # padding is zero
    assert batch.targets.shape == (4, batch.host_target_lengths.max())


def _rewrite(path: Path, items: list) -> None:
    np.save(path, _object_array(items))


@pytest.mark.parametrize(
    "damage, message",
    [
        ("unknown_symbol", "symbol 'XX' at position 1"),
        ("empty_transcript", "empty transcript"),
        ("empty_utterance", r"is empty \(0 frames\)"),
    ],
)
def test_librispeech_bad_files_are_one_line(tmp_path, damage, message):
    root = write_librispeech(tmp_path)
    name = sorted((root / "dev-clean" / "mfcc").glob("*.npy"))[2].name
    if damage == "unknown_symbol":
        np.save(root / "dev-clean" / "transcript" / name, np.array(["[SOS]", "AA", "XX", "[EOS]"]))
    elif damage == "empty_transcript":
        np.save(root / "dev-clean" / "transcript" / name, np.array(["[SOS]", "[EOS]"]))
    else:
        np.save(root / "dev-clean" / "mfcc" / name, np.zeros((0, 28), np.float32))
    _, inventory = formats.read_split("librispeech", root, "train", True, None)
    with pytest.raises(UserInputError, match=message) as error:
        formats.read_split("librispeech", root, "dev", True, inventory)
    assert name in str(error.value) and "\n" not in str(error.value)


def test_wsj_mismatched_counts_and_labels_out_of_range(tmp_path):
    root = write_wsj(tmp_path)
    labels = list(np.load(root / "wsj0_dev_merged_labels.npy", allow_pickle=True))
    _rewrite(root / "wsj0_dev_merged_labels.npy", labels[:-1])
    with pytest.raises(UserInputError, match="5 label sequences but .* has 6 utterances"):
        formats.read_split("wsj", root, "dev", True, None)
    _rewrite(root / "wsj0_dev_merged_labels.npy", [*labels[:-1], np.array([3, 46])])
    with pytest.raises(UserInputError, match="utterance 5: phoneme index 46 at position 1"):
        formats.read_split("wsj", root, "dev", True, None)


def test_sequences_too_long_for_ctc_after_downsampling_are_refused(tmp_path):
    dm = UtteranceSequencesDataModule(str(write_wsj(tmp_path)), batch_size=4, resident=False)
    dm.setup("fit")
    dm.check_ctc_lengths(lambda lengths: lengths // 2)  # 3-5 frames a phoneme: fits
    with pytest.raises(UserInputError, match=r"wsj0_train.npy: utterance \d+: \d+ phonemes"):
        dm.check_ctc_lengths(lambda lengths: lengths // 6)


def test_auto_refuses_a_folder_of_two_layouts(tmp_path):
    write_wsj(tmp_path)
    write_librispeech(tmp_path)
    with pytest.raises(UserInputError, match="several layouts"):
        formats.detect_format(tmp_path)


@pytest.mark.parametrize("layout", ["wsj_ctc", "librispeech_ctc"])
def test_demo_corpus_writes_the_sequence_layouts(tmp_path, layout):
    """The demo writer's sequences are each utterance's frame phonemes with runs collapsed."""
    from types import SimpleNamespace

    from data_modules.speech.demo_corpus import layouts

    rng = np.random.default_rng(0)
    specs, results = [], []
    for i, split in enumerate(["train"] * 4 + ["dev", "test"]):
        phonemes = np.array([0, 5, 5, 9, 0][: 3 + i % 3])
        states = np.concatenate([3 * np.repeat(p, 4) + np.arange(4) % 3 for p in phonemes])
        specs.append(SimpleNamespace(split=split, index=i))
        results.append((rng.normal(size=(len(states), 40)).astype(np.float32), states))
    layouts.write(tmp_path, layout, specs, results, seed=0)
    fmt = layout.removesuffix("_ctc")
    assert formats.detect_format(tmp_path)[0] == fmt
    inventory = Inventory.from_state(layouts.inventory(layout))
    data, _ = formats.read_split(fmt, tmp_path, "train", True, inventory)
    expected = [layouts.phoneme_sequence(results[i][1]) for i in range(4)]
    assert [t.tolist() for t in data.targets] == [
        [inventory.symbols.index(layouts.phoneme_symbols()[p]) for p in e]
        if fmt == "librispeech"
        else e.tolist()
        for e in expected
    ]
    assert expected[2].tolist() == [0, 5, 9, 0]  # "5 5" is one run of frames: one phoneme


def test_stress_marked_librispeech_symbols_all_get_codes(tmp_path):
    """ARPAbet with stress marks (AA0, AA1, AA2, ...) outnumbers the old spare codes; every
    symbol gets its own character, the course's symbols keep the course's."""
    from data_modules.speech.layouts.phoneme_codes import LIBRISPEECH_CODES, codes_for

    root = write_librispeech(tmp_path)
    vowels = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH")
    stressed = [f"{v}{mark}" for v in (*vowels, "UW") for mark in "012"]
    first = sorted((root / "train-clean-100" / "transcript").glob("*.npy"))[0]
    np.save(first, np.array(["[SOS]", *stressed, *LIBRISPEECH_CODES, "[EOS]"]))
    _, inventory = formats.read_split("librispeech", root, "train", True, None)
    assert len(inventory.symbols) > len(LIBRISPEECH_CODES) + 37
    assert len(set(inventory.codes)) == len(inventory.codes)
    for symbol, code in zip(inventory.symbols, inventory.codes, strict=True):
        assert len(code) == 1 and code.isprintable() and code not in " ,\"'\\"
        assert code == LIBRISPEECH_CODES.get(symbol, code)
    many = [f"X{i}" for i in range(200)]
    with pytest.raises(UserInputError, match=r"somewhere: 200 phoneme symbols .*\(X0, X1"):
        codes_for(many, LIBRISPEECH_CODES, "somewhere")
