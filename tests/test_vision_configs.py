"""Every vision config parses, builds its backbone and runs one fast_dev_run step on tiny CIFAR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from data_modules.cifar10 import CIFAR10DataModule
from lightning_dl.fit import main
from lightning_dl.models.airbench import AirbenchNet
from lightning_dl.models.convnet import ConvNet
from lightning_dl.models.mlp import MLP
from lightning_dl.models.resnet import ResNet18
from lightning_dl.tta import FlipTTAClassifier

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BACKBONES = {
    "cifar10_convnet.yaml": ConvNet,
    "cifar10_resnet18_finetune.yaml": ResNet18,
    "cifar10_fast.yaml": AirbenchNet,
}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_config_runs_fast_dev_run(name, cifar_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("LIGHTNING_DL_RUN_DIR", raising=False)
    run_dir = tmp_path / "run"
    summary = main([
        "--config", str(CONFIGS / name),
        "--data.init_args.data_dir", str(cifar_dir),
        "--data.init_args.val_split", "20",
        "--data.init_args.batch_size", "8",
        "--data.init_args.eval_batch_size", "8",
        "--trainer.fast_dev_run", "true",
        "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false",
        "--run.dir", str(run_dir),
    ])
    assert summary["global_step"] == 1
    assert 0.0 <= summary["test/acc"] <= 1.0 and summary["test/loss"] > 0
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 1


def test_finetune_config_loads_a_torchvision_file(cifar_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("LIGHTNING_DL_RUN_DIR", raising=False)
    torch.manual_seed(0)
    file_state = ResNet18((3, 224, 224), 1000).state_dict()  # torchvision layout, 1000 classes
    torch.save(file_state, tmp_path / "resnet18.pth")
    from lightning_dl.cli import LightningDLCLI

    cli = LightningDLCLI(args=[
        "--config", str(CONFIGS / "cifar10_resnet18_finetune.yaml"),
        "--data.init_args.data_dir", str(cifar_dir),
        "--model.init_args.backbone.init_args.weights", str(tmp_path / "resnet18.pth"),
        "--trainer.logger", "false",
        "--run.dir", str(tmp_path / "run"),
    ])
    backbone = cli.model.backbone
    assert torch.equal(backbone.layer1[0].conv1.weight, file_state["layer1.0.conv1.weight"])
    assert backbone.fc.out_features == 10
    assert sum(p.requires_grad for p in backbone.parameters()) == 12


def test_config_backbones_are_the_expected_classes(cifar_dir, tmp_path, monkeypatch):
    from lightning_dl.cli import LightningDLCLI

    for name, cls in BACKBONES.items():
        monkeypatch.delenv("LIGHTNING_DL_RUN_DIR", raising=False)
        cli = LightningDLCLI(args=[
            "--config", str(CONFIGS / name),
            "--data.init_args.data_dir", str(cifar_dir),
            "--trainer.logger", "false",
            "--run.dir", str(tmp_path / name),
        ])
        assert type(cli.model.backbone) is cls, name
        assert cli.model.backbone(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_flip_tta_in_test_and_predict_only(cifar_dir):
    torch.manual_seed(0)
    data = CIFAR10DataModule(str(cifar_dir), val_split=20, batch_size=8, eval_batch_size=8)
    model = FlipTTAClassifier(
        lambda s, n: MLP(s, n, hidden=[32]), num_classes=10, input_shape=(3, 32, 32)
    )
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    predicted = torch.cat(trainer.predict(model, datamodule=data))
    images, labels = data.datasets["test"].tensors
    x = data.transform(images, training=False)
    with torch.no_grad():
        model.eval()
        plain = model(x)  # outside test/predict: one pass
        tta = (model.backbone(x) + model.backbone(x.flip(-1))) / 2
    torch.testing.assert_close(plain, model.backbone(x))
    assert torch.equal(predicted, tta.argmax(1))
    assert not torch.equal(predicted, plain.argmax(1))  # the mirror pass changed some answers
    result = trainer.test(model, datamodule=data, verbose=False)[0]
    assert result["test/acc"] == pytest.approx((tta.argmax(1) == labels).float().mean().item())
