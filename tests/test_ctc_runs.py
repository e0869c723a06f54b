"""One tiny fit + submission per HW3P2 layout, through the real commands (in-process)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from data_modules.errors import UserInputError
from data_modules.speech.layouts import phoneme_codes
from lightning_dl.fit import main as fit_main
from tests.helpers.ctc_corpus import SYMBOLS, write_librispeech, write_wsj

ROOT = Path(__file__).parent.parent
_spec = importlib.util.spec_from_file_location("kaggle_predict", ROOT / "kaggle" / "predict.py")
predict = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(predict)

TINY = [
    "--trainer.accelerator", "cpu", "--trainer.precision", "32-true",
    "--trainer.max_steps", "24", "--trainer.val_check_interval", "12",
    "--trainer.log_every_n_steps", "6", "--trainer.logger", "null",
    "--trainer.enable_progress_bar", "false",
    "--model.backbone.init_args.channels", "[32]", "--model.backbone.init_args.hidden", "32",
    "--model.backbone.init_args.layers", "1", "--model.backbone.init_args.stride", "1",
    "--model.optimizer.lr", "0.01", "--model.lr_scheduler", "null",
    "--data.batch_size", "6", "--data.augment", "null",
]  # fmt: skip


@pytest.mark.parametrize("layout", ["wsj", "librispeech"])
def test_fit_and_submission(layout, tmp_path):
    data = write_wsj(tmp_path / "d") if layout == "wsj" else write_librispeech(tmp_path / "d")
    config = ROOT / "configs" / f"{layout}_ctc.yaml"
    run = tmp_path / "run"
    summary = fit_main(
        ["--config", str(config), "--data.data_dir", str(data), "--data.source", "auto",
         "--run.dir", str(run), *TINY]
    )  # fmt: skip
    assert summary["status"] == "completed" and summary["global_step"] == 24
    assert 0 <= summary["best_val/dist"] <= summary["val/dist"]
    assert (run / "val_examples.txt").read_text().count("pred:") == 2 * 3
    ckpt = run / "checkpoints" / "best.ckpt"
    out = tmp_path / "submission.csv"
    predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(out)])
    rows = list(csv.reader(out.open()))
    codes = set(phoneme_codes.WSJ_CODES) | set(phoneme_codes.LIBRISPEECH_CODES.values())
    assert rows[0] == (["Id", "Predicted"] if layout == "wsj" else ["index", "label"])
    assert [int(r[0]) for r in rows[1:]] == list(range(6))
    assert all(set(r[1]) <= codes for r in rows[1:])
    symbols = tmp_path / "symbols.csv"
    predict.main(
        ["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(symbols),
         "--label-format", "symbols", "--beam-width", "4"]
    )  # fmt: skip
    named = [r[1].split() for r in list(csv.reader(symbols.open()))[1:]]
    known = set(phoneme_codes.WSJ_PHONEMES) | set(SYMBOLS)
    assert len(named) == 6 and all(set(n) <= known for n in named)
    dev = predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--split", "dev"])
    assert dev == pytest.approx(summary["best_val/dist"], rel=1e-5)
    with pytest.raises(UserInputError, match="exists"):
        predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(out)])
    assert np.isfinite(summary["test/loss"])


def test_killed_ctc_run_resumes_bit_identical(tmp_path):
    """Killed at step 14 (last.ckpt from step 12, mid-epoch: 5 bucketed batches an epoch)."""
    from tests.helpers.tiny_runs import run_fit

    data = write_wsj(tmp_path / "d")
    args = [
        "--config", str(ROOT / "configs" / "wsj_ctc.yaml"), "--data.data_dir", str(data),
        "--data.source", "auto", *TINY, "--data.batch_size", "5", "--trainer.max_steps", "20",
        "--trainer.val_check_interval", "10", "--run.checkpoint_every_n_steps", "6",
        "--data.augment", "{freq_mask: 4, time_mask: 3, p: 0.5}",
    ]  # fmt: skip
    reference = fit_main([*args, "--run.dir", str(tmp_path / "a")])
    killed = run_fit(
        [*args, "--run.dir", str(tmp_path / "b"),
         "--trainer.callbacks+=tests.helpers.faults.KillAtStep", "--trainer.callbacks.step", "14"]
    )  # fmt: skip
    assert killed.returncode != 0 and "will not continue the same data order" not in killed.stderr
    resumed = fit_main([*args, "--run.dir", str(tmp_path / "b"), "--ckpt_path", "last"])
    a, b = (
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)
        for run in ("a", "b")
    )
    assert a["global_step"] == b["global_step"] == 20
    for name, weight in a["state_dict"].items():
        assert torch.equal(weight, b["state_dict"][name]), name
    for key in ("val/dist", "val/loss", "best_val/dist", "test/dist"):
        assert resumed[key] == reference[key], key


def test_an_impossible_alignment_stops_the_run_through_the_nan_guard(tmp_path, monkeypatch):
    """With the up-front length check switched off, the infinite CTC loss is not zeroed: the
    NaN guard stops the run at the first step, before any optimizer update is kept."""
    from data_modules.speech.sequences.datamodule import UtteranceDataset
    from lightning_dl.training.callbacks.nonfinite import NonFiniteLossError

    monkeypatch.setattr(UtteranceDataset, "check_ctc_lengths", lambda self, lengths: None)
    data = write_wsj(tmp_path / "d")
    args = [
        "--config", str(ROOT / "configs" / "wsj_ctc.yaml"), "--data.data_dir", str(data),
        "--data.source", "auto", *TINY, "--model.backbone.init_args.stride", "8",
        "--run.dir", str(tmp_path / "run"),
    ]  # fmt: skip
    with pytest.raises(NonFiniteLossError, match="non-finite training loss"):
        fit_main(args)
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_an_infeasible_labelled_test_utterance_is_refused_before_training(tmp_path):
    """The test split a fit is tested on is checked when training starts, not after it."""
    from data_modules.speech.demo_corpus.layouts import _object_array

    data = write_wsj(tmp_path / "d", test_labels=True)
    frames = list(np.load(data / "wsj0_test.npy", allow_pickle=True))
    labels = list(np.load(data / "wsj0_test_merged_labels.npy", allow_pickle=True))
    frames[2], labels[2] = frames[2][:3], np.array([1, 2, 3, 4, 5, 6])  # 6 phonemes, 3 frames
    np.save(data / "wsj0_test.npy", _object_array(frames))
    np.save(data / "wsj0_test_merged_labels.npy", _object_array(labels))
    args = [
        "--config", str(ROOT / "configs" / "wsj_ctc.yaml"), "--data.data_dir", str(data),
        "--data.source", "auto", *TINY, "--run.dir", str(tmp_path / "run"),
    ]  # fmt: skip
    with pytest.raises(UserInputError, match=r"wsj0_test.npy: utterance 2: 6 phonemes") as error:
        fit_main(args)
    assert error.value.exit_code == 2 and "\n" not in str(error.value)
    assert not (tmp_path / "run" / "checkpoints").exists()
