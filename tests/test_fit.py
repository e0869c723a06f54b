"""The fit entry point end to end: run directory contents, overrides, merging, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from lightning_dl.fit import main
from lightning_dl.tasks.classifier import Classifier
from lightning_dl.training.precision import resolve_precision
from tests.helpers.tiny_runs import BF16, QUICK, ROOT, tiny_args
from tests.helpers.wandb_offline import read_offline_run


def _run(tmp_path: Path, *extra: str) -> tuple[dict, Path]:
    run_dir = tmp_path / "run"
    return main(tiny_args("--run.dir", str(run_dir), *extra)), run_dir


def test_run_directory_has_everything(tmp_path):
    summary, run_dir = _run(
        tmp_path,
        "--trainer.max_steps",
        "40",
        "--trainer.val_check_interval",
        "10",
        "--trainer.log_every_n_steps",
        "5",
        "--model.optimizer.lr",
        "0.01",
        "--trainer.precision",
        "auto",
    )
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (
        config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.01
    )  # the override, resolved into the saved config
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val_steps = [int(r["step"]) for r in rows if r.get("val/acc")]
    assert val_steps == [9, 19, 29, 39]  # evaluation every 10 steps
    assert any(r.get("train/loss") for r in rows) and any(r.get("test/acc") for r in rows)
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["global_step"] == 40 and saved == pytest.approx(summary)
    # precision auto: what it resolved to on this host is recorded
    assert saved["precision"] == resolve_precision("auto", "cpu")
    assert saved["tested_checkpoint"] == str(run_dir / "checkpoints" / "best.ckpt")
    best_val = max(float(r["val/acc"]) for r in rows if r.get("val/acc"))
    assert saved["best_val/acc"] == pytest.approx(best_val)
    assert saved["test/acc"] > 0.5  # the synthetic clusters are learnable in 40 steps
    assert not (run_dir.parent / "latest").exists()  # an explicit --run.dir gets no link
    # The best checkpoint reloads on its own and predicts with the trained weights.
    model = Classifier.load_from_checkpoint(saved["best_checkpoint"], map_location="cpu")
    assert model.hparams.num_classes == 10 and model.hparams.input_shape == (32,)


def test_wandb_offline_run_holds_the_resolved_config_and_summary(tmp_path):
    summary, run_dir = _run(
        tmp_path, "--trainer.max_steps", "5", "--trainer.val_check_interval", "5"
    )
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    stored = read_offline_run(runs[0])
    assert stored["config"]["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.003
    assert stored["config"]["trainer"]["max_steps"] == 5
    assert stored["config"]["data"]["init_args"]["num_train"] == 512
    assert stored["summary"]["test/acc"] == pytest.approx(summary["test/acc"])
    assert stored["summary"]["global_step"] == 5


def test_configs_merge_left_to_right(tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text(
        "model:\n  init_args:\n    optimizer:\n      init_args: {lr: 0.02}\n"
        "trainer:\n  max_steps: 3\n"
    )
    _, run_dir = _run(tmp_path, "--config", str(override), "--trainer.logger", "false")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    optimizer = config["model"]["init_args"]["optimizer"]
    assert optimizer["class_path"] == "torch.optim.Adam"  # kept from the first config
    assert optimizer["init_args"]["lr"] == 0.02 and config["trainer"]["max_steps"] == 3


def test_existing_run_directory_is_never_overwritten(tmp_path):
    _run(tmp_path, "--trainer.max_steps", "2", "--trainer.logger", "false")
    with pytest.raises(ValueError, match="already holds a run"):
        _run(tmp_path, "--trainer.max_steps", "2", "--trainer.logger", "false")


def test_print_config_and_clear_errors(capsys):
    def exits(args: list[str]) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as stopped:
            main(args)
        out = capsys.readouterr()
        return stopped.value.code, out.out, out.err

    code, printed, _ = exits(["--config", QUICK, "--model.optimizer.lr", "0.5", "--print_config"])
    assert code in (0, None)
    optimizer = yaml.safe_load(printed)["model"]["init_args"]["optimizer"]
    assert optimizer == {"class_path": "torch.optim.Adam", "init_args": optimizer["init_args"]}
    assert optimizer["init_args"]["lr"] == 0.5
    assert yaml.safe_load(printed)["checkpoint"]["monitor"] == "val/acc"
    for recipe in ("wsj_ctc.yaml", "wsj_las.yaml"):  # the monitor the run uses, not the default
        code, printed, _ = exits(["--config", str(ROOT / "configs" / recipe), "--print_config"])
        checkpoint = yaml.safe_load(printed)["checkpoint"]
        assert (checkpoint["monitor"], checkpoint["mode"]) == ("val/dist", "min"), recipe
    code, _, err = exits(["--config", QUICK, "--model.init_args.learning_rate", "0.1"])
    assert code == 2 and "learning_rate" in err
    code, _, err = exits(["--config", QUICK, "--model.backbone.init_args.activation", "swish"])
    assert code == 2 and "activation" in err and "relu" in err


def _test_loss(model: Classifier, run_dir: Path, state_dict: dict, bf16: bool = False) -> float:
    from data_modules.synthetic import SyntheticClustersDataModule

    data_args = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["init_args"]
    datamodule = SyntheticClustersDataModule(**data_args)
    datamodule.setup("test")
    model.load_state_dict(state_dict)
    model.eval()
    losses = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for x, y in datamodule.test_dataloader():
            losses.append(torch.nn.functional.cross_entropy(model(x), y, reduction="sum"))
    return float(sum(losses) / len(datamodule.datasets["test"]))


@pytest.mark.parametrize("precision", ["32-true", pytest.param("bf16-mixed", marks=BF16)])
def test_ema_weights_are_the_ones_validated_checkpointed_and_tested(tmp_path, precision):
    """Recomputed here under the precision the run tested at (bf16-mixed evaluates in bf16:
    an fp32 recomputation differs at 1e-4, so it could not tell the weight sets apart)."""
    ema = tmp_path / "ema.yaml"
    ema.write_text(
        "trainer:\n  callbacks:\n"
        "    - class_path: pytorch_lightning.callbacks.EMAWeightAveraging\n"
        "      init_args:\n        decay: 0.9\n"
    )
    summary, run_dir = _run(
        tmp_path,
        "--config",
        str(ema),
        "--trainer.max_steps",
        "30",
        "--trainer.val_check_interval",
        "10",
        "--trainer.logger",
        "false",
        "--trainer.precision",
        precision,
    )
    checkpoint = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=True)
    model = Classifier.load_from_checkpoint(summary["best_checkpoint"], map_location="cpu")
    bf16 = precision == "bf16-mixed"
    averaged = _test_loss(model, run_dir, checkpoint["state_dict"], bf16)
    raw = _test_loss(model, run_dir, checkpoint["current_model_state"], bf16)
    assert abs(averaged - raw) > 1e-3  # the two weight sets differ measurably
    assert summary["test/loss"] == pytest.approx(averaged, rel=1e-5)
