"""Each split's voices from what the layout tells: LibriSpeech/libriphone ids, the demo corpus."""

from __future__ import annotations

from pathlib import Path

from data_modules.speech.demo_corpus.corpus import make_specs
from data_modules.speech.frames.voices import split_voices, voices_report
from lightning_dl.training.run.summary import _voice_lines


def test_librispeech_ids_name_the_speaker():
    files = [Path(f"dev-clean/mfcc/{s}-1240-0001.npy") for s in (84, 84, 174)]
    files.append(Path("dev-clean/transcript/999-1-1.npy"))  # transcripts are not counted
    assert split_voices(files, "dev", None) == {"84", "174"}
    assert split_voices([Path("train.npy"), Path("train_labels.npy")], "train", None) is None


def test_demo_voices_from_the_manifest_or_the_utterance_recipes():
    specs = make_specs(30, 4)
    manifest = {"request": {"n_utterances": 30, "seed": 4},
                "splits": {"dev": {"voices": ["en+m6", "en-us+klatt3"]}}}  # fmt: skip
    assert split_voices([Path("dev.npy")], "dev", manifest) == {"en+m6", "en-us+klatt3"}
    ids = [Path(f"feat/train/demo-{i:06d}.pt") for i in (0, 5, 27)]
    assert split_voices(ids, "train", manifest) == {specs[i].voice for i in (0, 5, 27)}


def test_report_counts_held_out_voices():
    report = voices_report({"train": {"a", "b", "c"}, "dev": {"c", "d"}, "test": {"e"}})
    assert report == {"train": {"voices": 3}, "dev": {"voices": 2, "in_train": 1},
                      "test": {"voices": 1, "in_train": 0}}  # fmt: skip
    assert _voice_lines(report, "test") == [
        "voices: train 3; dev 2 (1 also in training); test 1 (all held out)",
        "test/acc is on the test split: voices not heard in training",
    ]
    assert voices_report({"train": None, "dev": {"a"}}) is None
