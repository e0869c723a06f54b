"""kaggle/predict.py: a submission row per test frame, in order, from a trained checkpoint."""

from __future__ import annotations

import errno
import importlib.util
import os
import pickle
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from data_modules.errors import EXIT_BAD_INPUT, UserInputError
from data_modules.speech.frames.datamodule import SpeechFramesDataModule
from data_modules.speech.sequences.datamodule import UtteranceSequencesDataModule
from lightning_dl.fit import main as fit_main
from lightning_dl.predict import submission
from lightning_dl.tasks.classifier import Classifier
from tests.helpers.ctc_corpus import write_wsj
from tests.helpers.tiny_runs import tiny_args
from tests.helpers.wsj_corpus import naive_windows, write_corpus

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("kaggle_predict", ROOT / "kaggle" / "predict.py")
predict = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(predict)

TEST_LENGTHS = (7, 1, 12, 30)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """A few training steps through the real fit entry point and config (tiny MLP)."""
    root = tmp_path_factory.mktemp("wsj_run")
    data = root / "data"
    write_corpus(data, train=(40, 30, 50, 9), dev=(20, 15), test=TEST_LENGTHS)
    fit_main(
        [
            "--config",
            str(ROOT / "configs" / "wsj_mlp.yaml"),
            "--run.dir",
            str(root / "run"),
            "--data.data_dir",
            str(data),
            "--data.context",
            "3",
            "--data.normalize",
            "global",
            "--data.batch_size",
            "32",
            "--data.num_workers",
            "0",
            "--model.init_args.backbone.init_args.hidden",
            "[32]",
            "--trainer.max_steps",
            "24",
            "--trainer.logger",
            "false",
            "--trainer.accelerator",
            "cpu",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.precision",
            "32-true",
        ]
    )
    return root / "run" / "checkpoints" / "best.ckpt", data


def test_submission_has_one_row_per_test_frame_in_order(run, tmp_path):
    ckpt, data = run
    out = tmp_path / "submission.csv"
    predict.main(
        ["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(out), "--batch-size", "5"]
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "id,label"
    rows = np.loadtxt(out, delimiter=",", skiprows=1, dtype=np.int64)
    assert len(rows) == sum(TEST_LENGTHS)
    np.testing.assert_array_equal(rows[:, 0], np.arange(sum(TEST_LENGTHS)))
    assert rows[:, 1].min() >= 0 and rows[:, 1].max() < 138

    # Same labels as the model applied to independently built windows, with training's k and
    # training's global statistics (train.npy of this corpus, as the checkpoint stored them).
    model = Classifier.load_from_checkpoint(ckpt, weights_only=True).eval()
    frames = list(np.load(data / "test.npy", allow_pickle=True))  # our own file: trusted
    train = np.concatenate(list(np.load(data / "train.npy", allow_pickle=True))).astype(np.float64)
    mean, std = train.mean(0), np.sqrt(train.var(0) + 1e-6)
    x = naive_windows([((u - mean) / std).astype(np.float32) for u in frames], 3, "zero")
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).argmax(-1).numpy()
    np.testing.assert_array_equal(rows[:, 1], expected)


def test_refuses_to_overwrite_unless_asked(run, tmp_path):
    ckpt, data = run
    out = tmp_path / "submission.csv"
    out.write_text("precious\n")
    with pytest.raises(UserInputError, match="exists; pass --overwrite"):
        predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(out)])
    assert out.read_text() == "precious\n"
    predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(out), "--overwrite"])
    assert len(out.read_text().splitlines()) == 1 + sum(TEST_LENGTHS)


def test_dev_split_reports_accuracy(run, capsys):
    ckpt, data = run
    acc = predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--split", "dev"])
    assert 0.0 <= acc <= 1.0
    assert f"dev frame accuracy: {acc:.4f} (35 frames, k=3)" in capsys.readouterr().out


def test_class_count_mismatch_is_refused(run, tmp_path):
    ckpt, data = run
    state = torch.load(ckpt, weights_only=True)
    state["hyper_parameters"]["num_classes"] = 10  # a 10-class model, consistently so
    sd = state["state_dict"]
    for key in [k for k, v in sd.items() if v.shape[:1] == (138,)]:
        sd[key] = sd[key][:10]
    bad = tmp_path / "bad.ckpt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"-> 10 classes; the data gives \(7, 40\) -> 138"):
        predict.main(["--ckpt", str(bad), "--data-dir", str(data), "--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


class _Payload:
    """Stands for any Python object a foreign checkpoint could smuggle into its pickle."""

    def __reduce__(self):
        return (print, ("code ran while loading the checkpoint",))


def test_checkpoint_with_code_or_damage_is_refused_before_anything_runs(run, tmp_path, capsys):
    ckpt, data = run
    state = torch.load(ckpt, weights_only=True)
    state["hyper_parameters"]["payload"] = _Payload()
    smuggled = tmp_path / "smuggled.ckpt"
    torch.save(state, smuggled)
    out = tmp_path / "s.csv"
    with pytest.raises(ValueError, match=r"smuggled\.ckpt: holds Python objects other than"):
        predict.main(["--ckpt", str(smuggled), "--data-dir", str(data), "--out", str(out)])
    assert "code ran" not in capsys.readouterr().out and not out.exists()

    truncated = tmp_path / "truncated.ckpt"
    whole = ckpt.read_bytes()
    for size in (0, 10, 1000, len(whole) // 2, len(whole) - 1):
        truncated.write_bytes(whole[:size])
        with pytest.raises(
            UserInputError, match=r"truncated\.ckpt: truncated or not a PyTorch checkpoint"
        ):
            predict.main(["--ckpt", str(truncated), "--data-dir", str(data), "--out", str(out)])
    for garbage in (b"hello, not a checkpoint", pickle.dumps({"a": 1}), os.urandom(300)):
        truncated.write_bytes(garbage)
        with pytest.raises(UserInputError, match=r"truncated or not|plain Python pickle, not a"):
            predict.main(["--ckpt", str(truncated), "--data-dir", str(data), "--out", str(out)])
    assert not out.exists()


def test_row_count_is_checked(run, tmp_path, monkeypatch):
    ckpt, data = run
    real = submission.predict_in_order

    def dropping(*args, **kwargs):  # a path dropping a frame
        return real(*args, **kwargs)[:-1]

    monkeypatch.setattr(submission, "predict_in_order", dropping)
    with pytest.raises(
        RuntimeError,
        match=f"{sum(TEST_LENGTHS) - 1} predictions for {sum(TEST_LENGTHS)} test frames",
    ):
        predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


def test_settings_come_from_the_checkpoint(run):
    ckpt, _ = run
    state = torch.load(ckpt, weights_only=True)
    settings = submission.datamodule_settings(state, ckpt)
    assert settings["context"] == 3 and settings["normalize"] == "global"
    dm = SpeechFramesDataModule(".", **settings)  # no data here: all comes from the checkpoint
    dm.load_state_dict(state["SpeechFramesDataModule"])
    assert dm.input_shape == (7, 40) and dm.num_classes == 138 and dm.format == "kaggle"


def _predict_cli(ckpt: Path, data: Path, out: Path, devices: int, *extra: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [
        sys.executable,
        str(ROOT / "kaggle" / "predict.py"),
        "--ckpt",
        str(ckpt),
        "--data-dir",
        str(data),
        "--out",
        str(out),
        "--accelerator",
        "cpu",
        "--devices",
        str(devices),
        "--batch-size",
        "8",
        *extra,
    ]  # 50 frames in batches of 8: ranks get unequal, interleaved shares
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def test_ddp_submission_is_byte_identical_to_single_device(run, tmp_path):
    ckpt, data = run
    # one process gathering from the memory map, two holding the frames in their own memory
    _predict_cli(ckpt, data, tmp_path / "one.csv", 1, "--resident", "false")
    _predict_cli(ckpt, data, tmp_path / "two.csv", 2, "--resident", "true")
    one = (tmp_path / "one.csv").read_bytes()
    assert one.count(b"\n") == 1 + sum(TEST_LENGTHS)
    assert (tmp_path / "two.csv").read_bytes() == one


def test_out_that_is_a_directory_is_refused_before_any_work(run, tmp_path, monkeypatch):
    ckpt, data = run

    def no_work(*args):
        raise AssertionError("loaded the checkpoint before checking --out")

    monkeypatch.setattr(submission, "read_checkpoint", no_work)
    with pytest.raises(UserInputError, match="is a directory"):
        predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(tmp_path)])
    with pytest.raises(UserInputError, match="folder .*nowhere does not exist"):
        out = tmp_path / "nowhere" / "s.csv"
        predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(out)])

    def read_only(*args, **kwargs):  # a read-only mount (as root, permissions would not stop us)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("data_modules.io.atomic.tempfile.mkstemp", read_only)
    out = tmp_path / "s.csv"
    with pytest.raises(UserInputError, match=f"--out {out}: cannot write into {tmp_path} \\(Read-"):
        predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(out)])


def test_bad_input_is_one_error_line_and_exit_status_2(run, tmp_path, monkeypatch, capsys):
    """The script runs through data_modules.errors.run_main: no traceback for a user's mistake."""
    ckpt, data = run
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(ckpt.read_bytes()[:500])
    fit_main(tiny_args("--run.dir", str(tmp_path / "mlp"), "--trainer.logger", "false", steps=2))
    synthetic = tmp_path / "mlp" / "checkpoints" / "last.ckpt"  # not a frame classifier's
    cases = {
        "are not a WSJ frames DataModule's": ["--ckpt", str(synthetic), "--data-dir", str(data)],
        "truncated or not a PyTorch checkpoint": ["--ckpt", str(bad), "--data-dir", str(data)],
        "no such checkpoint file": ["--ckpt", str(tmp_path / "none.ckpt"), "--data-dir", str(data)],
        "test.npy: missing": ["--ckpt", str(ckpt), "--data-dir", str(tmp_path / "empty")],
        "--batch-size 0: expected at least 1": ["--ckpt", str(ckpt), "--data-dir", str(data),
                                                "--batch-size", "0"],
        "--devices 0: expected at least 1": ["--ckpt", str(ckpt), "--data-dir", str(data),
                                             "--devices", "0"],
        "Precision 'bogus' is invalid": ["--ckpt", str(ckpt), "--data-dir", str(data),
                                         "--precision", "bogus"],
    }  # fmt: skip
    for message, args in cases.items():
        argv = [str(ROOT / "kaggle" / "predict.py"), *args, "--out", str(tmp_path / "s.csv")]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(argv[0], run_name="__main__")
        assert exit_.value.code == EXIT_BAD_INPUT, message
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


class Spelling(pl.LightningModule):
    """A sequence recogniser that is no CTC model: for an utterance of T frames it predicts
    indices 0, 1, ... (mod the class count) T // 2 long, padded with -1 to its batch's longest
    (so batches differ in width), and says what the indices mean through ``codes``."""

    def __init__(self, num_classes: int, codes: list[str]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.codes = np.array(codes)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        halves = batch.host_lengths // 2
        out = torch.full((len(halves), int(halves.max())), -1, dtype=torch.int16)
        for row, n in zip(out, halves, strict=True):
            row[:n] = torch.arange(n) % self.hparams.num_classes
        return out


def test_any_module_with_padded_indices_and_codes_writes_a_sequence_submission(tmp_path, capsys):
    data = write_wsj(tmp_path / "data", counts=(8, 4, 7))
    dm = UtteranceSequencesDataModule(str(data), source="auto")
    codes = [chr(ord("a") + i % 26) for i in range(dm.num_classes)]
    model = Spelling(dm.num_classes, codes)
    ckpt = tmp_path / "spelling.ckpt"
    torch.save(
        {"state_dict": model.state_dict(), "datamodule_hyper_parameters": dict(dm.hparams),
         "hyper_parameters": {"_class_path": f"{__name__}.Spelling", **model.hparams},
         UtteranceSequencesDataModule.__qualname__: dm.state_dict()},
        ckpt,
    )  # fmt: skip
    out = tmp_path / "submission.csv"
    predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(out),
                  "--batch-size", "3"])  # fmt: skip
    lengths = [len(u) for u in np.load(data / "wsj0_test.npy", allow_pickle=True)]
    expected = ["".join(codes[i % dm.num_classes] for i in range(t // 2)) for t in lengths]
    rows = out.read_text().splitlines()
    assert rows == ["Id,Predicted", *(f"{i},{text}" for i, text in enumerate(expected))]
    with pytest.raises(UserInputError, match="--beam-width: Spelling has no beam search"):
        predict.main(["--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(tmp_path / "b"),
                      "--beam-width", "4"])  # fmt: skip
