"""WarmupEMA: the averaged weights follow the warmed-up decay exactly; counters are copied."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from lightning_dl.training.callbacks.ema import WarmupEMA, warmup_ema


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def test_average_is_the_warmed_up_ema_computed_by_hand():
    decay, power = 0.9, 0.75
    model = _model()
    averaged = AveragedModel(model, multi_avg_fn=warmup_ema(decay, power), use_buffers=True)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for t in range(40):
        with torch.no_grad():  # a training step: new weights, and the BN statistics move
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model.train()(torch.randn(8, 4))
        averaged.update_parameters(model)
        w = 1.0 if t == 0 else max((1 + t) ** -power, 1 - decay)  # the first update copies
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                expected[name] = expected[name] + w * (value - expected[name])
            else:
                expected[name] = value.clone()
    got = averaged.module.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-6, atol=1e-6, msg=name)
    # the counter is the model's, not an average of counters
    assert int(got["1.num_batches_tracked"]) == int(model.state_dict()["1.num_batches_tracked"])
    # late updates use the configured decay: the warm-up weight fell below 1 - decay
    assert (1 + 39) ** -power < 1 - decay


def test_early_average_follows_recent_weights_not_the_initialisation():
    model = _model()
    initial = model[0].weight.detach().clone()
    averaged = AveragedModel(model, multi_avg_fn=warmup_ema(0.998, 0.75))
    for _ in range(200):
        with torch.no_grad():
            model[0].weight.add_(0.01)
        averaged.update_parameters(model)
    drift = (averaged.module[0].weight - initial).mean().item()
    # a fixed decay of 0.998 would have moved only ~0.36 of the 2.0 drift; the warm-up > 1.5
    assert drift > 1.5


@pytest.mark.parametrize("kwargs", [{"decay": 1.0}, {"decay": -0.1}, {"power": 0.0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="WarmupEMA"):
        WarmupEMA(**kwargs)


def test_averaged_copy_shares_the_factories_and_opens_no_logger(tmp_path):
    """The EMA copies the module: the CLI's optimizer factory (which holds the CLI, its
    datamodule and loggers) is shared, not copied, so a fast_dev_run opens no wandb run."""
    import copy
    import sys

    from lightning_dl.fit import main
    from lightning_dl.tasks.classifier import Classifier
    from tests.helpers.tiny_runs import tiny_args

    model = Classifier(backbone=lambda shape, n: nn.Linear(shape[0], n), input_shape=(4,))
    copied = copy.deepcopy(model)
    assert copied.optimizer_factory is model.optimizer_factory
    assert copied.backbone.weight is not model.backbone.weight
    assert torch.equal(copied.backbone.weight, model.backbone.weight)

    ema = "--trainer.callbacks+=lightning_dl.training.callbacks.ema.WarmupEMA"
    main(tiny_args(ema, "--trainer.fast_dev_run", "2", "--run.dir", str(tmp_path / "run")))
    wandb = sys.modules.get("wandb")
    assert wandb is None or wandb.run is None  # nothing left open for the next run to reuse
    assert not (tmp_path / "run" / "wandb").exists()  # fast_dev_run logs nothing
