"""Vision configs build the intended backbones (tests/test_configs.py runs every config)."""

from __future__ import annotations

from pathlib import Path

import torch

from lightning_dl.models.airbench import AirbenchNet
from lightning_dl.models.convnet import ConvNet
from lightning_dl.models.resnet import ResNet18
from lightning_dl.training.cli import LightningDLCLI

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BACKBONES = {
    "cifar10_convnet.yaml": ConvNet,
    "cifar10_resnet18_finetune.yaml": ResNet18,
    "cifar10_fast.yaml": AirbenchNet,
}


def test_finetune_config_loads_a_torchvision_file(cifar_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("LIGHTNING_DL_RUN_DIR", raising=False)
    torch.manual_seed(0)
    file_state = ResNet18((3, 224, 224), 1000).state_dict()  # torchvision layout, 1000 classes
    torch.save(file_state, tmp_path / "resnet18.pth")
    cli = LightningDLCLI(
        args=[
            "--config",
            str(CONFIGS / "cifar10_resnet18_finetune.yaml"),
            "--data.init_args.data_dir",
            str(cifar_dir),
            "--model.init_args.backbone.init_args.weights",
            str(tmp_path / "resnet18.pth"),
            "--trainer.logger",
            "false",
            "--run.dir",
            str(tmp_path / "run"),
        ]
    )
    backbone = cli.model.backbone
    assert torch.equal(backbone.layer1[0].conv1.weight, file_state["layer1.0.conv1.weight"])
    assert backbone.fc.out_features == 10
    assert sum(p.requires_grad for p in backbone.parameters()) == 12


def test_config_backbones_are_the_expected_classes(cifar_dir, tmp_path, monkeypatch):
    for name, cls in BACKBONES.items():
        monkeypatch.delenv("LIGHTNING_DL_RUN_DIR", raising=False)
        cli = LightningDLCLI(
            args=[
                "--config",
                str(CONFIGS / name),
                "--data.init_args.data_dir",
                str(cifar_dir),
                "--trainer.logger",
                "false",
                "--run.dir",
                str(tmp_path / name),
            ]
        )
        assert type(cli.model.backbone) is cls, name
        assert cli.model.backbone(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
