"""The bf16 leg: what changes under bf16-mixed autocast, tested on every host.

CPU autocast runs bf16 on any x86 or Arm CPU (emulated, and slower, without native support), so
these run in CI whatever ``precision: auto`` resolves to there. Other files hold the rest of the
leg (``pytest -m bf16`` runs all of it): the NaN guard (test_failures), exact resume
(test_resume), DDP parity (test_ddp), EMA (test_fit), the hand-backward norms (test_norms) and
the calm console (test_console).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from lightning_dl.fit import main as fit_main
from lightning_dl.models.convnet import ConvNet
from lightning_dl.models.resnet import ResNet18
from lightning_dl.models.tdnn import TDNN
from lightning_dl.tasks.classifier import Classifier
from tests.helpers.tiny_runs import ROOT
from tests.helpers.wsj_corpus import write_corpus

pytestmark = pytest.mark.bf16

_spec = importlib.util.spec_from_file_location("kaggle_predict", ROOT / "kaggle" / "predict.py")
predict = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(predict)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize(
    ("name", "backbone", "shape"),
    [
        ("convnet", lambda s, n: ConvNet(s, n), (3, 32, 32)),
        ("resnet18", lambda s, n: ResNet18(s, n, stem="cifar"), (3, 32, 32)),
        ("tdnn", lambda s, n: TDNN(s, n, [32, 32], [3, 3], [1, 2]), (11, 40)),
    ],
)
def test_backbones_train_under_bf16_autocast_with_channels_last(name, backbone, shape):
    """One training step of each backbone under bf16 autocast, channels_last as the configs use
    it: logits in bf16 and within bf16 rounding of fp32's, finite gradients close to fp32's."""

    def step(autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        model = Classifier(backbone, 10, shape, channels_last=len(shape) == 3)
        data = torch.Generator().manual_seed(1)
        x = torch.randn(16, *shape, generator=data)
        y = torch.randint(0, 10, (16,), generator=data)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return logits, grads

    logits, grads = step(autocast=True)
    ref_logits, ref_grads = step(autocast=False)
    assert logits.dtype == torch.bfloat16 and ref_logits.dtype == torch.float32
    assert torch.isfinite(grads).all()
    assert _relative(logits, ref_logits) < 0.05, name  # bf16 keeps ~3 significant digits
    # deep nets with BatchNorm amplify bf16 rounding in the gradient (0.28-0.32 relative error
    # for the ConvNet and ResNet-18 here); its direction, what the update follows, stays
    assert F.cosine_similarity(grads, ref_grads, dim=0) > 0.9, name


def test_predict_on_a_bf16_checkpoint_gives_fits_test(tmp_path):
    """fit tests under the precision it trained at; predict.py, given that checkpoint, must
    evaluate the same way (the checkpoint records it), so its dev accuracy is fit's test."""
    data = tmp_path / "data"
    write_corpus(data, train=(40, 30, 50, 9), dev=(60, 45, 33), test=(7, 12))
    summary = fit_main(
        [
            "--config", str(ROOT / "configs" / "wsj_mlp.yaml"),
            "--run.dir", str(tmp_path / "run"), "--data.data_dir", str(data),
            "--data.context", "3", "--data.batch_size", "32", "--data.num_workers", "0",
            "--model.init_args.backbone.init_args.hidden", "[32]",
            "--trainer.max_steps", "12", "--trainer.logger", "false",
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            "--trainer.precision", "bf16-mixed",
        ]
    )  # fmt: skip
    assert summary["precision"] == "bf16-mixed"
    ckpt = summary["tested_checkpoint"]
    common = ["--ckpt", ckpt, "--data-dir", str(data), "--split", "dev", "--batch-size", "32"]
    assert predict.main(common) == summary["test/acc"]  # the courses' test is dev: exact

    # and the labels are those of the model under bf16 autocast, which fp32 need not give
    labels = {}
    for precision in ("bf16-mixed", "32-true"):
        out = tmp_path / f"{precision}.csv"
        predict.main(["--ckpt", ckpt, "--data-dir", str(data), "--out", str(out),
                      "--batch-size", "32", "--precision", precision])  # fmt: skip
        labels[precision] = out.read_text()
    default = tmp_path / "default.csv"
    predict.main(["--ckpt", ckpt, "--data-dir", str(data), "--out", str(default)])
    assert default.read_text() == labels["bf16-mixed"]
