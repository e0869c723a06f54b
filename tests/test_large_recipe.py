"""configs/librispeech_mlp_large.yaml: within the course's 20 M-parameter cap at the real files'
size, and a whole run of it at toy size on the LibriSpeech layout."""

from __future__ import annotations

from pathlib import Path

import yaml

from lightning_dl.fit import main as fit_main
from lightning_dl.models.mlp import MLP
from tests.helpers.frame_corpora import write_librispeech

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "librispeech_mlp_large.yaml"


def test_the_large_recipe_fits_the_parameter_cap():
    config = yaml.safe_load(CONFIG.read_text())
    backbone = config["model"]["init_args"]["backbone"]["init_args"]
    context = config["data"]["init_args"]["context"]
    # The F23/F24 files: 28 cepstra, 42 phoneme classes.
    model = MLP((2 * context + 1, 28), 42, **backbone)
    params = sum(p.numel() for p in model.parameters())
    assert 18e6 < params <= 20e6, params


def test_the_large_recipe_runs_at_toy_size(tmp_path, capsys):
    write_librispeech(tmp_path / "hw1p2", test_transcripts=True)
    summary = fit_main(
        [
            "--config", str(CONFIG), "--data.data_dir", str(tmp_path / "hw1p2"),
            "--run.dir", str(tmp_path / "run"), "--data.batch_size", "16",
            "--data.num_workers", "0", "--data.context", "3",
            "--model.init_args.backbone.init_args.hidden", "[32, 32]",
            "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu",
            "--trainer.precision", "32-true", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false",
        ]
    )  # fmt: skip
    assert summary["status"] == "completed" and summary["global_step"] == 6  # 55 frames // 16, x2
    assert 0.0 <= summary["test/acc"] <= 1.0
    # The final table names the voices: the tiny corpus's file names give 4 training speakers,
    # and dev's and test's 3 are among them.
    heard = {"voices": 3, "in_train": 3}
    assert summary["voices"] == {"train": {"voices": 4}, "dev": heard, "test": heard}
    assert "test/acc is on the test split: training voices only" in capsys.readouterr().out
