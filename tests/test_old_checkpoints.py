"""Checkpoints written before the re-layout (issue 21) keep working: predict, load, resume.

``fixtures/pre_relayout/`` was written by main at 52134d6, the last commit before any module
moved: a tiny frame MLP (wsj_mlp.yaml, k=2, global normalisation, hidden [8], 8 steps) trained on
the Kaggle-format corpus beside it, with the submission that commit's ``kaggle/predict.py`` wrote.
Its hyperparameters name the classes by their old dotted paths (``lightning_dl.classifier``,
``lightning_dl.models.mlp``, ``data_modules.wsj``), and it predates the precision record.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import torch

from lightning_dl.fit import main as fit_main
from tests.tiny_runs import ROOT

FIXTURE = Path(__file__).parent / "fixtures" / "pre_relayout"

_spec = importlib.util.spec_from_file_location("kaggle_predict", ROOT / "kaggle" / "predict.py")
predict = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(predict)


def test_the_fixture_names_the_old_paths():
    ckpt = torch.load(FIXTURE / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["_class_path"] == "lightning_dl.classifier.Classifier"
    assert ckpt["hyper_parameters"]["backbone"]["class_path"] == "lightning_dl.models.mlp.MLP"
    assert (
        ckpt["datamodule_hyper_parameters"]["_class_path"] == "data_modules.wsj.WSJFramesDataModule"
    )


def test_predict_writes_the_same_submission_from_an_old_checkpoint(tmp_path):
    corpus = shutil.copytree(FIXTURE / "corpus", tmp_path / "corpus")
    out = tmp_path / "submission.csv"
    predict.main(
        ["--ckpt", str(FIXTURE / "checkpoints" / "best.ckpt"), "--data-dir", str(corpus),
         "--out", str(out)]
    )  # fmt: skip
    assert out.read_text() == (FIXTURE / "submission.csv").read_text()


def test_load_from_checkpoint_and_resume_an_old_run(tmp_path):
    from lightning_dl.classifier import Classifier

    model = Classifier.load_from_checkpoint(
        FIXTURE / "checkpoints" / "best.ckpt", weights_only=True
    )
    assert model.hparams.num_classes == 138 and tuple(model.hparams.input_shape) == (5, 40)
    state = torch.load(FIXTURE / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    for name, weight in model.state_dict().items():
        assert torch.equal(weight, state[name]), name

    # resume the old run (its last.ckpt is at step 4 of 8) to the end: exactly where 52134d6's
    # uninterrupted run ended (52134d6 itself resumed this one inexactly: see test_resume)
    corpus = shutil.copytree(FIXTURE / "corpus", tmp_path / "corpus")
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE / "checkpoints", run_dir / "checkpoints")
    shutil.copy(FIXTURE / "summary.json", run_dir / "summary.json")
    resumed = fit_main(
        [
            "--config", str(ROOT / "configs" / "wsj_mlp.yaml"), "--run.dir", str(run_dir),
            "--ckpt_path", "last", "--data.data_dir", str(corpus), "--data.context", "2",
            "--data.normalize", "global", "--data.batch_size", "16", "--data.num_workers", "0",
            "--model.init_args.backbone.init_args.hidden", "[8]",
            "--trainer.max_steps", "8", "--trainer.val_check_interval", "4",
            "--trainer.logger", "false", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", "--trainer.precision", "32-true",
            "--run.checkpoint_every_n_steps", "4",
        ]
    )  # fmt: skip
    assert resumed["status"] == "completed"
    end = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    before = torch.load(FIXTURE / "uninterrupted_step8_state_dict.pt", weights_only=True)
    assert end["global_step"] == 8 and end["state_dict"].keys() == before.keys()
    for name, weight in before.items():
        assert torch.equal(end["state_dict"][name], weight), name  # bit-identical
