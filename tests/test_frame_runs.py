"""Whole runs in each layout: fit, test and a submission with the competition's labels and header;
the class inventory through the checkpoint; masking on training batches only, exactly resumable
(with VTLP)."""

from __future__ import annotations

import importlib.util
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import Callback

from data_modules.errors import UserInputError
from data_modules.speech.checks import Inventory
from data_modules.speech.frames.datamodule import SpeechFramesDataModule
from lightning_dl.fit import main as fit_main
from lightning_dl.models.mlp import MLP
from lightning_dl.tasks.classifier import Classifier
from tests.helpers.frame_corpora import PHONES, write_libriphone, write_librispeech
from tests.helpers.wsj_corpus import naive_windows, write_run_corpus

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("kaggle_predict", ROOT / "kaggle" / "predict.py")
predict = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(predict)
K = 2


def _fit(config: str, data: Path, run_dir: Path, *extra: str) -> dict:
    return fit_main(
        [
            "--config", str(ROOT / "configs" / config), "--run.dir", str(run_dir),
            "--data.data_dir", str(data), "--data.context", str(K),
            "--data.batch_size", "16", "--data.num_workers", "0",
            "--model.init_args.backbone.init_args.hidden", "[32]",
            "--trainer.max_steps", "12", "--trainer.val_check_interval", "6",
            "--trainer.logger", "false", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", "--trainer.precision", "32-true",
            *extra,
        ]
    )  # fmt: skip


def _normalised(frames: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for u in frames:
        u = u.astype(np.float64)
        out.append(((u - u.mean(0)) / np.sqrt(u.var(0) + 1e-6)).astype(np.float32))
    return out


def _expected_classes(ckpt: Path, frames: list[np.ndarray]) -> np.ndarray:
    model = Classifier.load_from_checkpoint(ckpt, weights_only=True).eval()
    x = naive_windows(_normalised(frames), K, "zero").reshape(-1, 2 * K + 1, frames[0].shape[1])
    with torch.inference_mode():
        return model(torch.from_numpy(x)).argmax(-1).numpy()


@pytest.fixture(scope="module")
def librispeech_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("librispeech")
    corpus = write_librispeech(root / "data")
    summary = _fit("librispeech_mlp.yaml", root / "data", root / "run", "--data.source", "auto")
    return root, corpus, summary


def test_librispeech_run_writes_symbols_in_sorted_file_order(librispeech_run, tmp_path):
    root, corpus, summary = librispeech_run
    assert summary["global_step"] == 12 and 0.0 <= summary["test/acc"] <= 1.0
    ckpt = root / "run" / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, weights_only=True)  # plain containers only
    inventory = state["SpeechFramesDataModule"]["inventory"]
    assert inventory == {
        "format": "librispeech", "feature_dim": 28, "num_classes": len(PHONES),
        "symbols": sorted(PHONES),
    }  # fmt: skip
    # Prediction needs only test-clean: the inventory and its order come from the checkpoint.
    test_only = tmp_path / "test_only"
    shutil.copytree(root / "data" / "test-clean", test_only / "test-clean")
    out = tmp_path / "submission.csv"
    predict.main(["--ckpt", str(ckpt), "--data-dir", str(test_only), "--out", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0] == "id,label" and len(lines) == 1 + sum(map(len, corpus["test"][0]))
    ids, labels = zip(*(line.split(",") for line in lines[1:]), strict=True)
    assert list(map(int, ids)) == list(range(len(ids)))
    expected = _expected_classes(ckpt, corpus["test"][0])
    assert list(labels) == [sorted(PHONES)[c] for c in expected]  # symbols, e.g. "[SIL]"


def test_librispeech_dev_accuracy_and_refusal_of_other_data(librispeech_run, tmp_path, capsys):
    root, _, _ = librispeech_run
    ckpt = root / "run" / "checkpoints" / "best.ckpt"
    accuracy = predict.main(
        ["--ckpt", str(ckpt), "--data-dir", str(root / "data"), "--split", "dev"]
    )
    assert 0.0 <= accuracy <= 1.0 and "dev frame accuracy" in capsys.readouterr().out
    other = tmp_path / "thirteen"
    write_librispeech(other, dim=13)  # another year's MFCC: 13 coefficients
    with pytest.raises(
        UserInputError, match=r"has shape \(6, 13\), expected \(T, 28\) as the training"
    ):
        predict.main(["--ckpt", str(ckpt), "--data-dir", str(other), "--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


def test_libriphone_run_writes_id_class_in_test_split_order(tmp_path):
    corpus = write_libriphone(tmp_path / "data", test_labels=True)
    summary = _fit("libriphone_mlp.yaml", tmp_path / "data", tmp_path / "run",
                   "--data.source", "libriphone", "--data.val_fraction", "0.2")  # fmt: skip
    assert summary["global_step"] == 12 and 0.0 <= summary["test/acc"] <= 1.0
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, weights_only=True)["SpeechFramesDataModule"]
    assert state["inventory"] == {"format": "libriphone", "feature_dim": 39, "num_classes": 41}
    out = tmp_path / "prediction.csv"
    predict.main(["--ckpt", str(ckpt), "--data-dir", str(tmp_path / "data"), "--out", str(out)])
    rows = np.loadtxt(out, delimiter=",", skiprows=1, dtype=np.int64)
    assert out.read_text().splitlines()[0] == "Id,Class"
    _, test_frames, _ = corpus["test"]  # listed order, not sorted: test_split.txt decides
    np.testing.assert_array_equal(rows[:, 0], np.arange(sum(map(len, test_frames))))
    np.testing.assert_array_equal(rows[:, 1], _expected_classes(ckpt, test_frames))


def test_checkpoint_inventory_must_match_the_data(tmp_path):
    write_libriphone(tmp_path, num_classes=12)
    dm = SpeechFramesDataModule(str(tmp_path), context=1)
    assert dm.num_classes == 12
    other = Inventory("libriphone", 39, 41).to_state()
    with pytest.raises(
        UserInputError,
        match=r"trained on libriphone frames of 39 features, 41 classes.* holds libriphone "
        r"frames of 39 features, 12 classes",
    ):
        dm.load_state_dict({"inventory": other})
    same = SpeechFramesDataModule(str(tmp_path), context=1)
    same.load_state_dict(dm.state_dict())  # the same data: accepted
    assert same.inventory == dm.inventory


# -- masking: training batches only, on the device, exactly resumable --------------------------
class ZeroBands(Callback):
    """Fraction of windows with a feature band that is zero in every frame, by stage."""

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = {}

    def _record(self, stage: str, batch) -> None:
        x = batch[0]
        self.seen.setdefault(stage, []).append((x == 0).all(dim=1).any(dim=1).float().mean().item())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._record("train", batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._record("val", batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._record("test", batch)


# VTLP and masking together: both draw from the generator exact resume reseeds per batch.
MASKING = ("--data.augment", "{freq_mask: 6, time_mask: 2, p: 1.0, vtlp: 0.2}")


def _wsj_args(data: list[str], run_dir: Path, *extra: str) -> list[str]:
    return [
        "--config", str(ROOT / "configs" / "wsj_mlp.yaml"), *data, "--run.dir", str(run_dir),
        "--data.batch_size", "16", "--data.context", "2",
        "--model.init_args.backbone.init_args.hidden", "[32, 32]",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "false", "--trainer.precision", "32-true",
        "--trainer.max_epochs", "-1", "--trainer.max_steps", "30",
        "--trainer.val_check_interval", "10", "--trainer.check_val_every_n_epoch", "null",
        "--run.checkpoint_every_n_steps", "6", *extra,
    ]  # fmt: skip


def test_masking_applies_to_training_batches_only(tmp_path):
    data = write_run_corpus(tmp_path / "wsj")
    masking = {"freq_mask": 6, "p": 1.0}
    dm = SpeechFramesDataModule(data[1], context=2, batch_size=16, augment=masking)

    model = Classifier(
        partial(MLP, hidden=[16]), num_classes=dm.num_classes, input_shape=dm.input_shape
    )
    probe = ZeroBands()
    trainer = Trainer(accelerator="cpu", max_steps=8, val_check_interval=4, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[probe])  # fmt: skip
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    assert np.mean(probe.seen["train"]) > 0.6  # 6 of 7 band widths are not empty
    assert max(probe.seen["val"]) == 0.0 and max(probe.seen["test"]) == 0.0


def test_exact_resume_holds_with_masking(tmp_path):
    data = write_run_corpus(tmp_path / "wsj")
    reference = fit_main(_wsj_args(data, tmp_path / "a", *MASKING))
    fit_main(_wsj_args(data, tmp_path / "plain"))  # the same run without masking
    crash = ("--trainer.callbacks+=tests.helpers.faults.RaiseOnRank",
             "--trainer.callbacks.rank", "0", "--trainer.callbacks.step", "19")  # fmt: skip
    with pytest.raises(RuntimeError, match="injected failure"):
        fit_main(_wsj_args(data, tmp_path / "b", *MASKING, *crash))
    resumed = fit_main(_wsj_args(data, tmp_path / "b", *MASKING, "--ckpt_path", "last"))
    for key in ("val/acc", "val/loss", "test/acc", "test/loss"):
        assert resumed[key] == reference[key], key
    weights = {
        name: torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for name, d in (("a", tmp_path / "a"), ("b", tmp_path / "b"), ("plain", tmp_path / "plain"))
    }
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["plain"][k]) for k in weights["a"])
