"""Checkpoints written before the re-layout (issue 21) keep working: predict, load, resume.

``fixtures/pre_relayout/`` was written by main at 52134d6, the last commit before any module
moved: a tiny frame MLP (wsj_mlp.yaml, k=2, global normalisation, hidden [8], 8 steps) trained on
the Kaggle-format corpus beside it, with the submission that commit's ``kaggle/predict.py`` wrote.
Its hyperparameters name the classes by their old dotted paths (``lightning_dl.classifier``,
``data_modules.wsj``), which the checkpoint reader upgrades in memory, and it predates the
precision record.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from lightning_dl.fit import main as fit_main
from lightning_dl.training.run.checkpoint_io import load_module, read_checkpoint
from tests.helpers.tiny_runs import ROOT

FIXTURE = Path(__file__).parent / "fixtures" / "pre_relayout"

_spec = importlib.util.spec_from_file_location("kaggle_predict", ROOT / "kaggle" / "predict.py")
predict = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(predict)


def test_the_fixture_names_the_old_paths_and_the_reader_upgrades_them():
    path = FIXTURE / "checkpoints" / "best.ckpt"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["hyper_parameters"]["_class_path"] == "lightning_dl.classifier.Classifier"
    assert ckpt["hyper_parameters"]["backbone"]["class_path"] == "lightning_dl.models.mlp.MLP"
    old_datamodule = ckpt["datamodule_hyper_parameters"]["_class_path"]
    assert old_datamodule == "data_modules.wsj.WSJFramesDataModule"
    # the reader names the very classes at their new places
    from data_modules.speech.frames.datamodule import WSJFramesDataModule
    from lightning_dl.tasks.classifier import Classifier

    upgraded = read_checkpoint(path)
    for hp, cls in (
        ("hyper_parameters", Classifier),
        ("datamodule_hyper_parameters", WSJFramesDataModule),
    ):
        module, _, name = upgraded[hp]["_class_path"].rpartition(".")
        assert getattr(importlib.import_module(module), name) is cls
    assert upgraded[WSJFramesDataModule.__qualname__] == ckpt["WSJFramesDataModule"]


def test_a_checkpoint_older_still_without_inventory_and_with_a_flat_input(tmp_path):
    """Before the class inventory was kept: no inventory, input_shape (window * 40,)."""
    ckpt = torch.load(FIXTURE / "checkpoints" / "best.ckpt", weights_only=True)
    del ckpt["WSJFramesDataModule"]["inventory"]
    ckpt["hyper_parameters"]["input_shape"] = (5 * 40,)
    older = tmp_path / "run" / "checkpoints" / "best.ckpt"
    older.parent.mkdir(parents=True)
    torch.save(ckpt, older)
    corpus = shutil.copytree(FIXTURE / "corpus", tmp_path / "corpus")
    out = tmp_path / "submission.csv"
    predict.main(["--ckpt", str(older), "--data-dir", str(corpus), "--out", str(out)])
    assert out.read_text() == (FIXTURE / "submission.csv").read_text()

    # older yet: no DataModule hyperparameters, the settings only in the run's config.yaml
    del ckpt["datamodule_hyper_parameters"]
    torch.save(ckpt, older)
    shutil.copy(FIXTURE / "config.yaml", tmp_path / "run" / "config.yaml")
    predict.main(
        ["--ckpt", str(older), "--data-dir", str(corpus), "--out", str(out), "--overwrite"]
    )
    assert out.read_text() == (FIXTURE / "submission.csv").read_text()


def test_importing_the_packages_installs_no_old_names():
    """Only the CLI (for old config files) makes the old module names importable."""
    code = (
        "import importlib.util, lightning_dl.predict.submission, lightning_dl.fit; "
        "print(importlib.util.find_spec('lightning_dl.classifier'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "None", done.stderr[-2000:]


def test_an_old_config_file_naming_the_old_class_paths_still_runs(tmp_path):
    corpus = shutil.copytree(FIXTURE / "corpus", tmp_path / "corpus")
    summary = fit_main(
        ["--config", str(FIXTURE / "config.yaml"), "--run.dir", str(tmp_path / "run"),
         "--data.data_dir", str(corpus), "--trainer.max_steps", "2"]
    )  # fmt: skip
    assert summary["status"] == "completed" and summary["global_step"] == 2
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["hyper_parameters"]["_class_path"].endswith("Classifier")


def test_predict_writes_the_same_submission_from_an_old_checkpoint(tmp_path):
    corpus = shutil.copytree(FIXTURE / "corpus", tmp_path / "corpus")
    out = tmp_path / "submission.csv"
    predict.main(
        ["--ckpt", str(FIXTURE / "checkpoints" / "best.ckpt"), "--data-dir", str(corpus),
         "--out", str(out)]
    )  # fmt: skip
    assert out.read_text() == (FIXTURE / "submission.csv").read_text()


def test_load_from_checkpoint_and_resume_an_old_run(tmp_path):
    from lightning_dl.tasks.classifier import Classifier

    model = load_module(FIXTURE / "checkpoints" / "best.ckpt", Classifier)
    assert model.hparams.num_classes == 138 and tuple(model.hparams.input_shape) == (5, 40)
    state = torch.load(FIXTURE / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    for name, weight in model.state_dict().items():
        assert torch.equal(weight, state[name]), name

    # resume the old run (its last.ckpt is at step 4 of 8) to the end: where an uninterrupted run
    # ends (on the fixture's host, with one thread, bit for bit: uninterrupted_step8_state_dict)
    corpus = shutil.copytree(FIXTURE / "corpus", tmp_path / "corpus")
    resumed_dir, fresh_dir = tmp_path / "resumed", tmp_path / "fresh"
    shutil.copytree(FIXTURE / "checkpoints", resumed_dir / "checkpoints")
    shutil.copy(FIXTURE / "summary.json", resumed_dir / "summary.json")

    def fit(run_dir: Path, *extra: str) -> dict:
        return fit_main(
            [
                "--config", str(ROOT / "configs" / "wsj_mlp.yaml"), "--run.dir", str(run_dir),
                "--data.data_dir", str(corpus), "--data.context", "2",
                "--data.normalize", "global", "--data.batch_size", "16",
                "--data.num_workers", "0", "--model.init_args.backbone.init_args.hidden", "[8]",
                "--trainer.max_steps", "8", "--trainer.val_check_interval", "4",
                "--trainer.logger", "false", "--trainer.accelerator", "cpu",
                "--trainer.enable_progress_bar", "false", "--trainer.precision", "32-true",
                "--run.checkpoint_every_n_steps", "4", *extra,
            ]
        )  # fmt: skip

    assert fit(resumed_dir, "--ckpt_path", "last")["status"] == "completed"
    fit(fresh_dir)
    ends = [d / "checkpoints" / "last.ckpt" for d in (resumed_dir, fresh_dir)]
    resumed, fresh = (torch.load(end, weights_only=True) for end in ends)
    assert resumed["global_step"] == fresh["global_step"] == 8
    before = torch.load(FIXTURE / "uninterrupted_step8_state_dict.pt", weights_only=True)
    assert resumed["state_dict"].keys() == fresh["state_dict"].keys() == before.keys()
    # compare what the weights compute: the fixture's first 4 steps ran on another
    # host's kernels and thread count, whose rounding Adam's first steps amplify (1e-3 in the
    # logits measured with 2 threads here; a Linear bias before BatchNorm, whose gradient is
    # rounding alone, differs the most). test_resume checks bit-identical resumes on one host.
    x = torch.randn(64, 5, 40, generator=torch.Generator().manual_seed(0))
    models = [Classifier.load_from_checkpoint(end, weights_only=True).eval() for end in ends]
    with torch.no_grad():
        torch.testing.assert_close(models[0](x), models[1](x), rtol=0, atol=5e-3)
