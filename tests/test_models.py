"""MLP backbone options and the Classifier's optimizers, schedules and predict_step."""

from __future__ import annotations

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from data_modules.synthetic import SyntheticClustersDataModule
from lightning_dl.models.mlp import ACTIVATIONS, MLP
from lightning_dl.tasks.classifier import Classifier
from lightning_dl.tasks.optim import CosineAnnealingLR


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


def _fit_recording_lrs(
    model: Classifier, max_steps: int, val_every: int | None = None
) -> tuple[pl.Trainer, list[float]]:
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
        limit_val_batches=0 if val_every is None else 1.0,
        val_check_interval=val_every,
        check_val_every_n_epoch=None if val_every else 1,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=data)
    return trainer, recorder.lrs


SCHEDULES = {
    "none": None,
    "step": partial(torch.optim.lr_scheduler.StepLR, step_size=3, gamma=0.1),
    # as LightningCLI builds them: every argument present, the run length left unset (None)
    "cosine": partial(CosineAnnealingLR, T_max=None, eta_min=0.0),
    "onecycle": partial(
        torch.optim.lr_scheduler.OneCycleLR,
        max_lr=0.05,
        total_steps=None,
        epochs=None,
        pct_start=0.25,
    ),
}


@pytest.mark.parametrize(
    ("optimizer", "schedule"),
    [
        (torch.optim.SGD, "step"),
        (torch.optim.Adam, "cosine"),
        (torch.optim.AdamW, "onecycle"),
        (torch.optim.Adam, "none"),
        (torch.optim.RMSprop, "cosine"),
    ],
)
def test_optimizers_and_schedules_follow_the_config(optimizer, schedule):
    model = _classifier(optimizer=partial(optimizer, lr=0.05), lr_scheduler=SCHEDULES[schedule])
    trainer, used = _fit_recording_lrs(model, max_steps=12)
    assert type(trainer.optimizers[0]) is optimizer
    # the CPU has fused kernels for these three; RMSprop has none and runs as it is
    fused = {g.get("fused") for g in trainer.optimizers[0].param_groups}  # what each group runs
    assert fused == ({None} if optimizer is torch.optim.RMSprop else {True})
    # used: the learning rate of each of the 12 optimizer steps
    assert len(used) == 12
    if schedule == "none":
        assert used == [0.05] * 12
    elif schedule == "step":  # x0.1 every 3 steps
        assert used[::3] == pytest.approx([0.05, 0.005, 0.0005, 0.00005])
    elif schedule == "cosine":  # T_max = the run's 12 steps, from the trainer
        assert used[0] == 0.05 and used[6] == pytest.approx(0.025) and used[-1] < 0.05 * 0.02
    else:  # one-cycle over the run's 12 steps: warm up to the peak lr, then anneal below it
        assert used[0] < 0.05 / 10 and max(used) == pytest.approx(0.05) and used[-1] < 1e-5


def test_one_cycle_survives_a_one_step_warm_up():
    # 4 steps x pct_start 0.25: torch's OneCycleLR alone raises ZeroDivisionError here
    schedule = partial(SCHEDULES["onecycle"], pct_start=0.25)
    model = _classifier(optimizer=partial(torch.optim.SGD, lr=0.05), lr_scheduler=schedule)
    _, lrs = _fit_recording_lrs(model, max_steps=4)  # warm up for one step, then anneal
    assert len(lrs) == 4 and lrs[0] < lrs[1] > lrs[2] > lrs[3] and lrs[1] > 0.05 / 2


def test_reduce_on_plateau_steps_once_per_validation_on_val_loss():
    # threshold 0.99: only a 100x lower val/loss would count as better, so every validation
    # after the first is a bad one and (patience 0) halves the lr, once per validation
    plateau = partial(
        torch.optim.lr_scheduler.ReduceLROnPlateau, factor=0.5, patience=0, threshold=0.99
    )
    model = _classifier(optimizer=partial(torch.optim.SGD, lr=0.1), lr_scheduler=plateau)
    trainer, lrs = _fit_recording_lrs(model, max_steps=12, val_every=4)
    assert trainer.lr_scheduler_configs[0].monitor == "val/loss"
    assert lrs == pytest.approx([0.1] * 8 + [0.05] * 4)  # validations after steps 4, 8, 12


class _GroupedBackbone(nn.Module):
    """A backbone that asks for a lower learning rate on its body, as ResNet18 does."""

    def __init__(self, shape: tuple[int, ...], n: int) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(shape[0], 8), nn.Linear(8, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).relu())

    def parameter_groups(self) -> list[dict]:
        return [
            {"name": "body", "params": list(self.body.parameters()), "lr_scale": 0.1},
            {"name": "head", "params": list(self.head.parameters())},
        ]


def test_parameter_group_lr_scales_hold_with_and_without_a_schedule():
    def lrs_of(schedule):
        model = Classifier(
            _GroupedBackbone, 4, (8,), optimizer=partial(torch.optim.Adam, lr=0.02),
            lr_scheduler=schedule,
        )  # fmt: skip
        trainer, _ = _fit_recording_lrs(model, max_steps=4)
        return [g["lr"] for g in trainer.optimizers[0].param_groups]

    assert lrs_of(None) == pytest.approx([0.002, 0.02])
    # a scalar one-cycle peak is scaled per group too: the body peaks at a tenth
    model = Classifier(
        _GroupedBackbone, 4, (8,), optimizer=partial(torch.optim.Adam, lr=0.02),
        lr_scheduler=partial(SCHEDULES["onecycle"], max_lr=0.02),
    )  # fmt: skip
    trainer, _ = _fit_recording_lrs(model, max_steps=8)
    peaks = [g["max_lr"] for g in trainer.optimizers[0].param_groups]
    assert peaks == pytest.approx([0.002, 0.02])


def test_fused_optimizer_takes_the_same_steps_as_the_plain_one():
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
    weights = []
    for fused in (True, False):
        torch.manual_seed(1)
        adamw = partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.01, fused=None)
        model = _classifier(optimizer=adamw, fused_optimizer=fused)
        opt = model.configure_optimizers()
        assert opt.param_groups[0]["fused"] is (True if fused else None)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)


def test_a_config_that_sets_fused_false_is_obeyed():
    model = _classifier(optimizer=partial(torch.optim.Adam, lr=1e-3, fused=False))
    assert model.configure_optimizers().param_groups[0]["fused"] is False


def test_predict_step_returns_class_indices():
    model = _classifier()
    x = torch.randn(6, 8)
    pred = model.predict_step((x,), 0)
    assert pred.dtype == torch.long and pred.shape == (6,)
    assert torch.equal(pred, model(x).argmax(-1))


def test_only_trainable_parameters_reach_the_optimizer():
    model = _classifier()
    model.backbone.net[1].weight.requires_grad_(False)
    (group,) = model._param_groups()
    params = group["params"]
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


def test_an_mlp_too_large_to_train_in_memory_is_refused_before_it_is_built():
    from data_modules.errors import UserInputError

    with pytest.raises(UserInputError, match=r"MLP: 1000006.4 B weights .* GiB are available"):
        MLP((200001, 40), 10, hidden=[125_000_000])  # a context of 100000 frames, say
