"""The HW4P2 (character) layouts: each read, told apart from the frame and phoneme layouts,
every bad input one line, and the demo corpus written in them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from data_modules.errors import UserInputError
from data_modules.speech.checks import Inventory
from data_modules.speech.demo_corpus import layouts
from data_modules.speech.demo_corpus.layouts import _object_array
from data_modules.speech.layouts import frames as frame_formats
from data_modules.speech.layouts import sequences as formats
from data_modules.speech.sequences.datamodule import UtteranceSequencesDataModule
from tests.helpers.ctc_corpus import (
    CHAR_FOLDERS,
    CHARACTERS,
    sentences,
    write_librispeech,
    write_librispeech_chars,
    write_wsj_chars,
)
from tests.helpers.wsj_corpus import write_corpus


def _spelt(inventory: Inventory, targets: np.ndarray) -> str:
    return "".join(inventory.symbols[i] for i in targets)


def test_wsj_chars_reads_words_as_sentences_of_characters(tmp_path):
    root = write_wsj_chars(tmp_path)
    assert formats.detect_format(root)[0] == "wsj_chars"
    data, inventory = formats.read_split("wsj_chars", root, "train", True, None)
    texts = [text for _, text in sentences(24, 40, 0)]
    assert [_spelt(inventory, t) for t in data.targets] == texts
    found = tuple(sorted(set("".join(texts))))
    assert inventory.symbols == inventory.codes == found and inventory.unit == "characters"
    assert Inventory.from_state(inventory.to_state()) == inventory
    test, _ = formats.read_split("wsj_chars", root, "test", False, inventory)
    assert test.targets is None and len(test.frames) == 6
    assert formats.has_split("wsj_chars", root, "test") == (True, False)


@pytest.mark.parametrize("form", ["str words", "a list of words", "the sentence"])
def test_wsj_chars_reads_each_form_of_transcript(tmp_path, form):
    root = write_wsj_chars(tmp_path)
    words = np.load(root / "train_transcripts.npy", allow_pickle=True)
    forms = {
        "str words": lambda w: np.array([x.decode() for x in w]),
        "a list of words": list,
        "the sentence": lambda w: b" ".join(w),
    }
    np.save(root / "train_transcripts.npy", _object_array([forms[form](w) for w in words]))
    data, inventory = formats.read_split("wsj_chars", root, "train", True, None)
    assert [_spelt(inventory, t) for t in data.targets] == [t for _, t in sentences(24, 40, 0)]
    np.save(root / "train_transcripts.npy", _object_array([np.array([b"\xff"])] * 24))
    with pytest.raises(UserInputError, match=r"utterance 0: transcript is not UTF-8"):
        formats.read_split("wsj_chars", root, "train", True, None)


@pytest.mark.parametrize("variant", sorted(CHAR_FOLDERS))
def test_librispeech_chars_reads_each_year_of_folders(tmp_path, variant):
    root = write_librispeech_chars(tmp_path, variant=variant)
    assert formats.detect_format(root)[0] == "librispeech_chars"
    data, inventory = formats.read_split("librispeech_chars", root, "train", True, None)
    assert data.feature_dim == 28 and inventory.symbols == CHARACTERS  # fbank's (F, T) turned
    expected = [text for _, text in sentences(24, 28, 0)][::-1]  # sorted names: reverse order
    assert [_spelt(inventory, t) for t in data.targets] == expected
    test, _ = formats.read_split("librispeech_chars", root, "test", False, inventory)
    assert test.targets is None and len(test.frames) == 6


def test_datamodule_batches_characters_and_keeps_them_in_the_checkpoint(tmp_path):
    root = str(write_wsj_chars(tmp_path))
    dm = UtteranceSequencesDataModule(root, batch_size=4, resident=False)
    assert dm.format == "wsj_chars" and dm.input_shape == (40,)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert int(batch.targets.max()) < dm.num_classes and batch.targets.shape[0] == 4
    lengths = sorted(len(text) for _, text in sentences(6, 40, 1))
    assert sorted(batch.host_target_lengths) == lengths[-4:]  # the 4 longest utterances
    restored = UtteranceSequencesDataModule(root, batch_size=4, resident=False)
    restored.load_state_dict(dm.state_dict())
    assert restored.inventory == dm.inventory and restored.format == "wsj_chars"


def test_a_frame_config_at_a_transcript_folder_and_the_reverse_are_one_line(tmp_path):
    chars = write_wsj_chars(tmp_path / "chars")
    with pytest.raises(UserInputError, match="UtteranceSequencesDataModule .*wsj_chars") as e:
        frame_formats.detect_format(chars)
    assert "train_transcripts.npy" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserInputError, match="librispeech_chars"):
        frame_formats.detect_format(write_librispeech_chars(tmp_path / "libri"))
    frames = tmp_path / "frames"
    write_corpus(frames)
    assert frame_formats.detect_format(frames)[0] == "kaggle"
    with pytest.raises(UserInputError, match="train_labels.npy.*SpeechFramesDataModule") as e:
        formats.detect_format(frames)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "config, source",
    [("wsj_mlp", "auto"), ("wsj_mlp", "kaggle"), ("wsj_ctc", "auto"), ("wsj_ctc", "wsj")],
)
def test_the_command_line_refuses_the_other_task_s_folder_in_one_line(
    tmp_path, capsys, config, source
):
    """Exit status 2 and one ``error:`` line naming the DataModule to use, before training."""
    from data_modules.errors import run_main
    from lightning_dl.fit import main
    from tests.helpers.tiny_runs import ROOT

    if config == "wsj_mlp":
        data, reader = write_wsj_chars(tmp_path / "chars"), "UtteranceSequencesDataModule"
    else:
        write_corpus(data := tmp_path / "frames")
        reader = "SpeechFramesDataModule"
    args = ["--config", str(ROOT / "configs" / f"{config}.yaml"), "--data.source", source,
            "--data.data_dir", str(data), "--trainer.logger", "false",
            "--run.dir", str(tmp_path / "run")]  # fmt: skip
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: main(args))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert stopped.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert reader in errors[0] and str(data) in errors[0]


def test_phoneme_and_character_transcripts_are_told_apart_or_refused(tmp_path):
    assert formats.detect_format(write_librispeech(tmp_path / "phonemes"))[0] == "librispeech"
    root = write_librispeech_chars(tmp_path / "letters", variant="plain")
    assert formats.detect_format(root)[0] == "librispeech_chars"
    for path in (root / "train-clean-100" / "transcript").glob("*.npy"):
        np.save(path, np.array(["B", "D"]))  # phonemes or letters: no marker says
    with pytest.raises(UserInputError, match="cannot tell phoneme transcripts from character"):
        formats.detect_format(root)


WSJ_MESSAGES = {
    "unknown": r"dev_transcripts.npy: utterance 2 has symbol 'Z' at position 4, which is not in",
    "empty_transcript": r"dev_transcripts.npy: utterance 2: empty transcript",
    "not_words": r"utterance 2: transcript is ndarray \(2,\), expected a 1-D array of words",
    "empty_utterance": r"dev.npy: utterance 2 is empty \(0 frames\)",
    "counts": r"5 transcripts but .*dev.npy has 6 utterances",
}
LIBRISPEECH_MESSAGES = {
    "unknown": r"{name} has symbol 'Z' at position 1, which is not in",
    "empty_transcript": r"{name}: empty transcript",
    "not_words": r"{name}: holds float64 \(2,\), expected a 1-D array of",
    "empty_utterance": r"{name} is empty \(0 frames\)",
    "counts": r"{name}: no transcript",
}


def _damage_wsj(root: Path, damage: str) -> str:
    words = list(np.load(root / "dev_transcripts.npy", allow_pickle=True))
    frames = list(np.load(root / "dev.npy", allow_pickle=True))
    if damage == "unknown":
        words[2] = np.array([b"THE", b"ZOO"])
    elif damage == "empty_transcript":
        words[2] = np.array([])
    elif damage == "not_words":
        words[2] = np.array([1.0, 2.0])
    elif damage == "empty_utterance":
        frames[2] = np.zeros((0, 40), np.float32)
    else:
        words = words[:-1]
    np.save(root / "dev_transcripts.npy", _object_array(words))
    np.save(root / "dev.npy", _object_array(frames))
    return WSJ_MESSAGES[damage]


def _damage_librispeech(root: Path, damage: str) -> str:
    name = sorted((root / "dev-clean" / "mfcc").glob("*.npy"))[2].name
    transcripts = root / "dev-clean" / "transcript" / "raw"
    if damage == "unknown":
        np.save(transcripts / name, np.array(["<sos>", "T", "Z", "<eos>"]))
    elif damage == "empty_transcript":
        np.save(transcripts / name, np.array(["<sos>", "<eos>"]))
    elif damage == "not_words":
        np.save(transcripts / name, np.array([1.0, 2.0]))
    elif damage == "empty_utterance":
        np.save(root / "dev-clean" / "mfcc" / name, np.zeros((0, 28), np.float32))
    else:
        (transcripts / name).unlink()
    return LIBRISPEECH_MESSAGES[damage].format(name=name)


@pytest.mark.parametrize(
    "damage", ["unknown", "empty_transcript", "not_words", "empty_utterance", "counts"]
)
@pytest.mark.parametrize("fmt", ["wsj_chars", "librispeech_chars"])
def test_bad_dev_files_are_one_line(tmp_path, fmt, damage):
    if fmt == "wsj_chars":
        message = _damage_wsj(write_wsj_chars(tmp_path), damage)
    else:
        message = _damage_librispeech(write_librispeech_chars(tmp_path), damage)
    _, inventory = formats.read_split(fmt, tmp_path, "train", True, None)
    with pytest.raises(UserInputError, match=message) as error:
        formats.read_split(fmt, tmp_path, "dev", True, inventory)
    assert "\n" not in str(error.value)


def test_transcripts_longer_than_the_downsampled_frames_are_refused(tmp_path):
    dm = UtteranceSequencesDataModule(str(write_wsj_chars(tmp_path)), resident=False)
    dm.setup("fit")
    dm.check_ctc_lengths(lambda lengths: lengths)  # 2-4 frames a character: fits
    with pytest.raises(UserInputError, match=r"utterance \d+: \d+ characters .* need at least"):
        dm.check_ctc_lengths(lambda lengths: lengths // 8)


@pytest.mark.parametrize("layout", ["wsj_chars", "librispeech_chars"])
def test_demo_corpus_writes_the_character_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    texts = ["Mr. Chen owns 42 percent.", "Boeing fell, analysts said.", "A deal.", "Q", "Z."]
    splits = ["train"] * 3 + ["dev", "test"]
    specs = [SimpleNamespace(split=s, index=i, text=texts[i]) for i, s in enumerate(splits)]
    results = [(rng.normal(size=(30, 40)).astype(np.float32), None) for _ in specs]
    layouts.write(tmp_path, layout, specs, results, seed=0)
    assert formats.detect_format(tmp_path)[0] == layout
    assert all((tmp_path / name).exists() for name in layouts.files(layout))
    inventory = Inventory.from_state(layouts.inventory(layout))
    data, _ = formats.read_split(layout, tmp_path, "train", True, inventory)
    spelt = sorted(_spelt(inventory, t) for t in data.targets)  # librispeech: by file name
    assert spelt == sorted(["MR. CHEN OWNS 42 PERCENT", "BOEING FELL ANALYSTS SAID", "A DEAL"])
    test, _ = formats.read_split(layout, tmp_path, "test", True, inventory)
    assert _spelt(inventory, test.targets[0]) == "Z" and data.feature_dim == inventory.feature_dim


@pytest.mark.parametrize("layout", ["wsj_chars", "librispeech_chars"])
def test_demo_source_renders_the_character_layouts(tmp_path, layout):
    pytest.importorskip("espeakng_loader")
    dm = UtteranceSequencesDataModule(
        str(tmp_path / "demo"), source="demo", demo_layout=layout, demo_utterances=3,
        demo_workers=1, batch_size=1, resident=False,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert dm.format == layout and batch.x.shape[-1] == dm.inventory.feature_dim
    assert _spelt(dm.inventory, batch.targets[0, : batch.host_target_lengths[0]].tolist())
