"""NumPy MLP: finite-difference gradient checks, agreement with PyTorch, training loop."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from lightning_dl.numpy_mlp import (
    ELU,
    GELU,
    MLP,
    BatchNorm,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
    evaluate,
    get_training_stats,
)

H = 1e-5


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300))


def numeric_grad(f, array: np.ndarray) -> np.ndarray:
    """Central differences of the scalar f() w.r.t. every entry of array (perturbed in place)."""
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        old = array[i]
        array[i] = old + H
        plus = f()
        array[i] = old - H
        minus = f()
        array[i] = old
        grad[i] = (plus - minus) / (2 * H)
    return grad


def away_from_zero(rng, shape):
    """Inputs with |x| >= 0.1 so kinks (ReLU at 0) stay out of the finite-difference window."""
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < 0.1, np.sign(x + 1e-12) * 0.1 + x, x)


def check_module(module, x: np.ndarray, tol: float) -> None:
    rng = np.random.default_rng(1)
    dout = rng.normal(size=module.forward(x).shape)

    def loss() -> float:
        return float((module.forward(x) * dout).sum())

    module.zero_grads()
    module.forward(x)
    dx = module.backward(dout)
    assert rel_error(dx, numeric_grad(loss, x)) < tol
    for name, param in module.params.items():
        err = rel_error(module.grads[name], numeric_grad(loss, param))
        assert err < tol, f"{type(module).__name__}.{name}: relative error {err}"


@pytest.mark.parametrize(
    "cls", [Identity, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, GELU, partial(GELU, approximate="tanh")]
)
def test_activation_gradients(cls):
    check_module(cls(), away_from_zero(np.random.default_rng(0), (4, 6)), tol=1e-6)


def test_linear_gradients():
    rng = np.random.default_rng(0)
    layer = Linear(5, 3, init_std=0.5, rng=rng)
    layer.params["b"][:] = rng.normal(size=3)
    check_module(layer, rng.normal(size=(4, 5)), tol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(training):
    rng = np.random.default_rng(0)
    bn = BatchNorm(4)
    bn.params["gamma"][:] = rng.uniform(0.5, 2, 4)
    bn.params["beta"][:] = rng.normal(size=4)
    bn.running_mean[:], bn.running_var[:] = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    bn.training = training
    check_module(bn, rng.normal(size=(6, 4)) * 2 + 1, tol=1e-5)


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(5, 4)) * 3, rng.integers(0, 4, 5)
    ce = SoftmaxCrossEntropy()
    ce.forward(logits, labels)
    numeric = numeric_grad(lambda: ce.forward(logits, labels), logits)
    ce.forward(logits, labels)
    assert rel_error(ce.backward(), numeric) < 1e-5


def test_softmax_cross_entropy_is_finite_for_extreme_logits():
    ce = SoftmaxCrossEntropy()
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]])
    loss = ce.forward(logits, np.array([0, 0]))
    assert np.isfinite(loss) and loss == pytest.approx((0.0 + 2000.0 + np.log(2)) / 2)
    grad = ce.backward()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[0, 0, 0], [-0.5, 0.25, 0.25]], atol=1e-12)


TORCH_ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
    "gelu": nn.GELU,
    "gelu_tanh": partial(nn.GELU, approximate="tanh"),
    "softmax": partial(nn.Softmax, dim=1),
}


def torch_twin(mlp: MLP, activation: str, output_activation: str | None = None) -> nn.Sequential:
    """The same network in PyTorch, float64, with the NumPy MLP's current weights copied in."""
    layers = []
    hidden_layers = mlp.layers[:-1] if output_activation else mlp.layers
    for layer in hidden_layers:
        if isinstance(layer, Linear):
            w = layer.params["W"]
            linear = nn.Linear(*w.shape).double()
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w.T))
                linear.bias.copy_(torch.from_numpy(layer.params["b"]))
            layers.append(linear)
        elif isinstance(layer, BatchNorm):
            layers.append(nn.BatchNorm1d(len(layer.params["gamma"]), eps=layer.eps).double())
        else:
            layers.append(TORCH_ACTIVATIONS[activation]())
    if output_activation:
        layers.append(TORCH_ACTIVATIONS[output_activation]())
    return nn.Sequential(*layers)


@pytest.mark.parametrize(
    "activation", ["relu", "sigmoid", "tanh", "elu", "leaky_relu", "gelu", "gelu_tanh"]
)
def test_numpy_mlp_matches_pytorch_over_sgd_momentum_steps(activation):
    rng = np.random.default_rng(0)
    mlp = MLP(
        12, 5, [16, 8], activation, lr=0.05, momentum=0.9, num_bn_layers=1, init_std=0.3, seed=3
    )
    net = torch_twin(mlp, activation)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    xs = rng.normal(size=(20, 16, 12))
    ys = (xs @ rng.normal(size=(12, 5))).argmax(-1)  # learnable labels
    losses_np, losses_torch = [], []
    for step, (x, y) in enumerate(zip(xs, ys, strict=True)):
        out_np = mlp.forward(x)  # no zero_grads: backward sets the gradients
        losses_np.append(mlp.backward_loss(y))
        optimizer.zero_grad()
        out_torch = net(torch.from_numpy(x))
        loss = nn.functional.cross_entropy(out_torch, torch.from_numpy(y))
        loss.backward()
        losses_torch.append(loss.item())
        if step == 0:  # same outputs and every parameter gradient on the first batch
            np.testing.assert_allclose(out_np, out_torch.detach().numpy(), atol=1e-8, rtol=0)
            grads_np = [g.T if g.ndim == 2 else g for m in mlp.layers for g in m.grads.values()]
            grads_torch = [p.grad.numpy() for p in net.parameters()]
            assert len(grads_np) == len(grads_torch) == 8
            for got, want in zip(grads_np, grads_torch, strict=True):
                np.testing.assert_allclose(got, want, atol=1e-8, rtol=0)
        mlp.step()
        optimizer.step()
    np.testing.assert_allclose(losses_np, losses_torch, atol=1e-8, rtol=0)
    assert losses_np[-1] < losses_np[0], "the run should learn something"

    mlp.eval()
    net.eval()
    x = rng.normal(size=(3, 12))
    np.testing.assert_allclose(
        mlp.forward(x), net(torch.from_numpy(x)).detach().numpy(), atol=1e-8, rtol=0
    )


def test_shape_errors_are_clear():
    mlp = MLP(6, 3, [4], num_bn_layers=1)
    with pytest.raises(ValueError, match=r"\(batch, 6\), got \(2, 5\)"):
        mlp.forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=">= 2 samples"):
        mlp.forward(np.zeros((1, 6)))
    assert mlp.eval().forward(np.zeros((1, 6))).shape == (1, 3)


def test_batchnorm_eval_uses_running_statistics():
    rng = np.random.default_rng(0)
    bn = BatchNorm(3, momentum=0.2)
    for _ in range(4):
        bn.forward(rng.normal(size=(8, 3)) * 3 + 5)
    assert not np.allclose(bn.running_mean, 0) and not np.allclose(bn.running_var, 1)
    bn.training = False
    one = rng.normal(size=(1, 3))
    expected = (one - bn.running_mean) / np.sqrt(bn.running_var + bn.eps)
    np.testing.assert_allclose(bn.forward(one), expected, atol=1e-12)
    mean_before = bn.running_mean.copy()
    bn.forward(rng.normal(size=(8, 3)))
    np.testing.assert_array_equal(bn.running_mean, mean_before)


def test_training_stats_shuffle_and_stop_at_max_steps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4))
    y = (x[:, 0] > 0).astype(np.int64)
    mlp = MLP(4, 2, [8], "tanh", lr=0.5, momentum=0.5, init_std=0.5)
    stats = get_training_stats(mlp, (x, y), (x[:20], y[:20]), batch_size=10, max_steps=25)
    assert stats.steps == 25 and len(stats.train_losses) == len(stats.val_errors) == 3
    assert stats.train_losses[-1] < stats.train_losses[0]
    assert stats.val_errors[-1] < 0.2


def test_track_best_keeps_the_weights_with_the_lowest_validation_error():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 4))
    y = (x[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(np.int64)
    # a large step makes the validation error move up and down between measurements
    mlp = MLP(4, 2, [16], "relu", lr=2.0, momentum=0.9, num_bn_layers=1, init_std=0.5, seed=3)
    val = (x[:40], y[:40])
    stats = get_training_stats(
        mlp, (x[40:], y[40:]), val, batch_size=10, max_steps=45, eval_every=10, track_best=True
    )
    assert stats.eval_steps == [10, 20, 30, 40, 45]
    best = int(np.argmin(stats.eval_val_errors))
    assert stats.best_step == stats.eval_steps[best]
    last_error = evaluate(mlp, val)[1]
    assert last_error == stats.eval_val_errors[-1]
    mlp.load_state_dict(stats.best_state)
    assert evaluate(mlp, val)[1] == stats.eval_val_errors[best]
    with pytest.raises(ValueError, match="track_best needs eval_every"):
        get_training_stats(mlp, (x, y), val, batch_size=10, max_steps=5, track_best=True)


def test_state_dict_round_trip_includes_batchnorm_running_statistics():
    rng = np.random.default_rng(0)
    mlp = MLP(3, 2, [5], "tanh", num_bn_layers=1, init_std=0.3, seed=0)
    saved = mlp.state_dict()
    x = rng.normal(size=(8, 3))
    before = mlp.eval().forward(x).copy()
    mlp.train().forward(x)
    mlp.backward_loss(np.zeros(8, dtype=np.int64))
    mlp.step()  # changes weights and BatchNorm running statistics
    assert not np.allclose(mlp.eval().forward(x), before)
    mlp.load_state_dict(saved)
    np.testing.assert_array_equal(mlp.eval().forward(x), before)
    with pytest.raises(ValueError, match="layers"):
        mlp.load_state_dict(saved[:-1])
