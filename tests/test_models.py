"""MLP backbone options and the Classifier's optimizers, schedules and predict_step."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from data_modules.synthetic import SyntheticClustersDataModule
from lightning_dl.classifier import Classifier
from lightning_dl.models.mlp import ACTIVATIONS, MLP


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("norm", ["none", "batchnorm", "layernorm"])
def test_mlp_shapes_and_layers(activation, norm):
    model = MLP((3, 4, 4), 7, hidden=[16, 8], activation=activation, norm=norm, dropout=0.1)
    assert model(torch.randn(5, 3, 4, 4)).shape == (5, 7)
    kinds = [type(m) for m in model.net]
    assert kinds.count(nn.Linear) == 3 and kinds.count(nn.Dropout) == 2
    assert kinds.count(type(ACTIVATIONS[activation]())) == 2
    norm_type = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm}.get(norm)
    assert norm_type is None or kinds.count(norm_type) == 2


def test_mlp_init_std():
    torch.manual_seed(0)
    model = MLP((1000,), 10, hidden=[500], init_std=1e-4)
    first = model.net[1]
    assert abs(first.weight.std().item() - 1e-4) < 1e-5
    assert torch.count_nonzero(first.bias) == 0


def test_mlp_unknown_names_are_clear():
    with pytest.raises(ValueError, match="unknown activation 'swishy'; expected one of"):
        MLP((4,), 2, activation="swishy")
    with pytest.raises(ValueError, match="unknown norm 'groupnorm'"):
        MLP((4,), 2, norm="groupnorm")


def _classifier(**kwargs) -> Classifier:
    return Classifier(
        lambda shape, n: MLP(shape, n, hidden=[16]), num_classes=4, input_shape=(8,), **kwargs
    )


class _LRRecorder(pl.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])


def _fit_recording_lrs(model: Classifier, max_steps: int) -> tuple[pl.Trainer, list[float]]:
    """Train on small synthetic clusters; return the trainer and each optimizer step's lr."""
    data = SyntheticClustersDataModule(
        num_train=256, num_val=64, num_test=64, num_features=8, num_classes=4, batch_size=32
    )
    recorder = _LRRecorder()
    trainer = pl.Trainer(
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        callbacks=[recorder],
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=data)
    return trainer, recorder.lrs


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "expected_opt"),
    [
        ("sgd", "step", torch.optim.SGD),
        ("adam", "cosine", torch.optim.Adam),
        ("adamw", "onecycle", torch.optim.AdamW),
        ("adam", "none", torch.optim.Adam),
    ],
)
def test_optimizers_and_schedules_follow_the_config(optimizer, scheduler, expected_opt):
    model = _classifier(optimizer=optimizer, scheduler=scheduler, lr=0.05, step_size=3)
    trainer, used = _fit_recording_lrs(model, max_steps=12)
    assert type(trainer.optimizers[0]) is expected_opt
    assert trainer.optimizers[0].defaults["fused"] is True  # the CPU has fused kernels
    # used: the learning rate of each of the 12 optimizer steps
    assert len(used) == 12
    if scheduler == "none":
        assert used == [0.05] * 12
    elif scheduler == "step":  # x0.1 every 3 steps
        assert used[::3] == pytest.approx([0.05, 0.005, 0.0005, 0.00005])
    elif scheduler == "cosine":
        assert used[0] == 0.05 and used[6] == pytest.approx(0.025) and used[-1] < 0.05 * 0.02
    else:  # one-cycle: warm up to the peak lr, then anneal far below it
        assert used[0] < 0.05 / 10 and max(used) == pytest.approx(0.05) and used[-1] < 1e-5


def test_one_cycle_survives_a_one_step_warm_up():
    # 4 steps x pct_start 0.25: torch's OneCycleLR alone raises ZeroDivisionError here
    model = _classifier(optimizer="sgd", scheduler="onecycle", pct_start=0.25, lr=0.05)
    _, lrs = _fit_recording_lrs(model, max_steps=4)  # warm up for one step, then anneal
    assert len(lrs) == 4 and lrs[0] < lrs[1] > lrs[2] > lrs[3] and lrs[1] > 0.05 / 2


def test_fused_optimizer_takes_the_same_steps_as_the_plain_one():
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
    weights = []
    for fused in (True, False):
        torch.manual_seed(1)
        model = _classifier(optimizer="adamw", weight_decay=0.01, fused_optimizer=fused)
        opt = model.configure_optimizers()
        assert opt.defaults["fused"] is (True if fused else None)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)


def test_predict_step_returns_class_indices():
    model = _classifier()
    x = torch.randn(6, 8)
    pred = model.predict_step((x,), 0)
    assert pred.dtype == torch.long and pred.shape == (6,)
    assert torch.equal(pred, model(x).argmax(-1))


def test_only_trainable_parameters_reach_the_optimizer():
    model = _classifier()
    model.backbone.net[1].weight.requires_grad_(False)
    params = model._param_groups()
    assert all(p.requires_grad for p in params)
    assert len(params) == len(list(model.parameters())) - 1


def test_flip_tta_averages_the_mirror_only_at_evaluation():
    torch.manual_seed(0)
    model = Classifier(
        lambda shape, n: MLP(shape, n, hidden=[8]),
        num_classes=3,
        input_shape=(1, 2, 4),
        flip_tta=True,
    ).eval()
    x = torch.randn(5, 1, 2, 4)
    expected = (model(x) + model(x.flip(-1))) / 2
    torch.testing.assert_close(model.evaluate(x), expected)
    assert torch.equal(model.predict_step((x,), 0), expected.argmax(-1))
    assert not torch.allclose(model.evaluate(x), model(x))
