"""BatchNorm over (batch, features): statistics per feature across the batch.

Three versions of the same layer, so the hand-derived gradient can be checked against autograd:
``CustomBatchNormAutograd`` (torch ops, autograd's backward), ``CustomBatchNormManualFunction``
(an ``autograd.Function`` with the analytic backward) and ``CustomBatchNormManualModule`` (the
module around it). Both modules keep running mean/variance exactly like ``nn.BatchNorm1d``
(``momentum``, or a cumulative average when it is None; unbiased variance) and use them in eval
mode, so a trained model can predict on a single sample.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from lightning_dl.layers._base import Norm
from lightning_dl.layers._kernels import kernel_forward, kernel_grads, use_kernels


def _update_running(
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    n: int,
    momentum: float,
) -> None:
    """``nn.BatchNorm1d``'s update: the running variance follows the unbiased batch variance."""
    running_mean.lerp_(mean.to(running_mean.dtype), momentum)
    running_var.lerp_((var * (n / (n - 1))).to(running_var.dtype), momentum)


class CustomBatchNormManualFunction(torch.autograd.Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta with the batch's biased mean/var.

    With c = x - mean, r = 1 / sqrt(var + eps), x_hat = c * r and N the batch size:
        dbeta  = sum_n dy
        dgamma = sum_n dy * x_hat = r * sum_n dy * c
        dx     = gamma * r * (dy - dbeta / N - x_hat * dgamma / N)
    In torch ops (the path for GPUs), column sums are matrix-vector products (one read), the
    output and dx each one fused ``addcmul`` pass; on CPU the same formulas run as the fused loops
    of ``_kernels.py``. Running buffers, if given, are updated in place, like ``F.batch_norm``.
    """

    @staticmethod
    def forward(
        ctx,
        x: torch.Tensor,
        gamma: torch.Tensor,
        beta: torch.Tensor,
        eps: float = 1e-5,
        running_mean: torch.Tensor | None = None,
        running_var: torch.Tensor | None = None,
        momentum: float = 0.1,
    ) -> torch.Tensor:
        n = x.shape[0]
        ctx.kernels = use_kernels(x, gamma)
        if ctx.kernels is not None:
            y, mean, inv_std = kernel_forward(ctx, x, gamma, beta, eps, per_row=False)
            var = inv_std.pow(-2) - eps  # double precision: exact to ~1e-16 relative
        else:
            ones = x.new_ones(n)
            mean = (ones @ x) / n
            centered = x - mean
            y = centered * centered  # y's buffer holds the squares until the output overwrites it
            var = (ones @ y) / n
            inv_std = torch.rsqrt(var + eps)
            torch.addcmul(beta, centered, gamma * inv_std, out=y)
            need_x, need_gamma, _ = ctx.needs_input_grad[:3]
            ctx.save_for_backward(
                centered if (need_x or need_gamma) else None,
                inv_std if (need_x or need_gamma) else None,
                gamma if need_x else None,
            )
        if running_mean is not None and running_var is not None:
            _update_running(running_mean, running_var, mean, var, n, momentum)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor):
        if ctx.kernels is not None:
            return (*kernel_grads(ctx, dy), None, None, None, None)
        need_x, need_gamma, need_beta = ctx.needs_input_grad[:3]
        centered, inv_std, gamma = ctx.saved_tensors
        n = dy.shape[0]
        ones = dy.new_ones(n)
        dx = dgamma = dbeta = None
        if need_beta or need_x:
            dbeta = ones @ dy
        if need_gamma or need_x:
            buf = dy * centered
            dgamma = (ones @ buf) * inv_std
        if need_x:
            scale = gamma * inv_std
            # scale * dy - scale * dbeta / N - c * (scale * r * dgamma / N), in two fused passes
            dx = torch.addcmul(-scale * dbeta / n, dy, scale, out=buf)
            dx.addcmul_(centered, -scale * inv_std * dgamma / n)
        grads = (dx, dgamma if need_gamma else None, dbeta if need_beta else None)
        return (*grads, None, None, None, None)


class _BatchNorm(Norm):
    """Running statistics and the eval path shared by both modules."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__(num_features, eps)
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, momentum={self.momentum}"

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            scale = self.gamma * torch.rsqrt(self.running_var + self.eps)
            return torch.addcmul(self.beta - self.running_mean * scale, x, scale)
        if x.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} in training mode needs a batch of at least 2 samples to "
                f"estimate the variance, got input of shape {tuple(x.shape)}; call .eval() to "
                "predict on one"
            )
        self.num_batches_tracked += 1
        factor = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked)
        return self._normalize_batch(x, factor)

    def _normalize_batch(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        raise NotImplementedError


class CustomBatchNormAutograd(_BatchNorm):
    """Reference version: the forward pass spelled out, gradients left to autograd."""

    def _normalize_batch(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        mean = x.mean(dim=0)
        centered = x - mean
        var = (centered * centered).mean(dim=0)
        with torch.no_grad():
            _update_running(self.running_mean, self.running_var, mean, var, len(x), factor)
        return self.gamma * (centered / torch.sqrt(var + self.eps)) + self.beta


class CustomBatchNormManualModule(_BatchNorm):
    """BatchNorm whose training-mode gradient is the hand-written one above."""

    def _normalize_batch(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        return CustomBatchNormManualFunction.apply(
            x, self.gamma, self.beta, self.eps, self.running_mean, self.running_var, factor
        )
