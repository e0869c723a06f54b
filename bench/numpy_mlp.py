"""Training steps per second: the NumPy MLP against the same network in PyTorch on CPU.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/numpy_mlp.py [--steps 200] [--threads 1]

One step = forward, softmax cross-entropy, backward, SGD-with-momentum update (PyTorch also zeroes
its gradients; the NumPy backward sets them instead), on a fixed pool of random float32 batches
(identical for both), the two timed in alternating blocks.
Goal from issue 3: NumPy >= 0.5x PyTorch.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch load their BLAS thread pools

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lightning_dl.numpy_mlp import MLP  # noqa: E402

# name, input size, hidden sizes, activation, batch size, BatchNorm layers
CONFIGS = [
    ("cifar10 seed", 3072, [100], "relu", 200, 0),
    ("cifar10 +BN", 3072, [100], "relu", 200, 1),
    ("mnist CMU", 784, [64, 32], "sigmoid", 100, 0),
    ("wide", 1024, [512, 512], "relu", 256, 2),
]
TORCH_ACT = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


def torch_net(d_in: int, hidden: list[int], act: str, n_bn: int) -> nn.Sequential:
    layers, width = [], d_in
    for i, units in enumerate(hidden):
        layers.append(nn.Linear(width, units))
        if i < n_bn:
            layers.append(nn.BatchNorm1d(units))
        layers.append(TORCH_ACT[act]())
        width = units
    return nn.Sequential(*layers, nn.Linear(width, 10))


def interleaved_rates(steps_fns, batch_pools, steps: int, block: int = 10) -> list[float]:
    """Steps/s of each step function, timed in alternating blocks of ``block`` steps.

    Alternating blocks spread bursts of load from other processes over all contenders alike.
    """
    for step, batches in zip(steps_fns, batch_pools, strict=True):
        for x, y in batches[:5]:
            step(x, y)
    elapsed = [0.0] * len(steps_fns)
    for start_step in range(0, steps, block):
        for k, (step, batches) in enumerate(zip(steps_fns, batch_pools, strict=True)):
            start = time.perf_counter()
            for i in range(start_step, min(start_step + block, steps)):
                step(*batches[i % len(batches)])
            elapsed[k] += time.perf_counter() - start
    return [steps / t for t in elapsed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(
        f"torch threads={torch.get_num_threads()} OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
        f" float32, {args.steps} timed steps"
    )
    print(
        f"{'config':<14}{'layers':>22}{'batch':>7}{'numpy st/s':>12}{'torch st/s':>12}{'ratio':>8}"
    )
    for name, d_in, hidden, act, batch, n_bn in CONFIGS:
        batches = [
            (rng.normal(size=(batch, d_in)).astype(np.float32), rng.integers(0, 10, batch))
            for _ in range(8)
        ]
        mlp = MLP(
            d_in,
            10,
            hidden,
            act,
            lr=1e-3,
            momentum=0.9,
            num_bn_layers=n_bn,
            init_std=0.01,
            dtype=np.float32,
        )

        def numpy_step(x, y, mlp=mlp):
            mlp.forward(x)
            mlp.backward_loss(y)
            mlp.step()

        net = torch_net(d_in, hidden, act, n_bn)
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        tbatches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

        def torch_step(x, y, net=net, opt=opt):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()

        np_rate, torch_rate = interleaved_rates(
            [numpy_step, torch_step], [batches, tbatches], args.steps
        )
        layers = "-".join(str(v) for v in [d_in, *hidden, 10]) + f" {act}"
        print(
            f"{name:<14}{layers:>22}{batch:>7}{np_rate:>12.1f}{torch_rate:>12.1f}"
            f"{np_rate / torch_rate:>7.2f}x"
        )


if __name__ == "__main__":
    main()
