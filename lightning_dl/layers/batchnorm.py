"""BatchNorm over (batch, features): statistics per feature across the batch.

Three versions of the same layer, so the hand-derived gradient can be checked against autograd:
- ``CustomBatchNormAutograd``: forward in plain torch ops, backward by autograd.
- ``CustomBatchNormManualFunction``: an ``autograd.Function`` with the analytic backward.
- ``CustomBatchNormManualModule``: the module around that Function.

Both modules keep running mean/variance exactly like ``nn.BatchNorm1d`` (exponential average with
``momentum``, cumulative average when ``momentum=None``, unbiased batch variance for the running
variance) and use them in eval mode, so a trained model can predict on a single sample.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from lightning_dl.layers._checks import check_features, statistics_dtype
from lightning_dl.layers._kernels import kernel_forward, kernel_grads, use_kernels


class CustomBatchNormManualFunction(torch.autograd.Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta with the batch's biased mean/var.

    With c = x - mean, r = 1 / sqrt(var + eps), x_hat = c * r and N the batch size:
        dbeta  = sum_n dy
        dgamma = sum_n dy * x_hat = r * sum_n dy * c
        dx     = gamma * r * (dy - dbeta / N - x_hat * dgamma / N)
    (the last line folds sum(dy*gamma) and sum(dy*gamma*x_hat) into dbeta and dgamma).
    In torch ops (below; the path for GPUs), column sums are matrix-vector products (BLAS, one
    read), the output and dx are each one fused ``addcmul`` pass, and buffers are reused. On CPU
    the same formulas run as fused loops (``csrc/norms.cpp``, see ``_kernels.py``) when they build.
    If running buffers are given they are updated in place, like ``F.batch_norm``.
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
        kernels = use_kernels(x, gamma)
        ctx.kernels = kernels
        if kernels is not None:
            y, mean, inv_std = kernel_forward(ctx, kernels.batch_norm_forward, x, gamma, beta, eps)
            if running_mean is not None and running_var is not None:
                var = inv_std.pow(-2) - eps  # double precision: exact to ~1e-16 relative
                running_mean.lerp_(mean.to(running_mean.dtype), momentum)
                running_var.lerp_((var * (n / (n - 1))).to(running_var.dtype), momentum)
            return y
        ones = x.new_ones(n)
        mean = (ones @ x) / n
        centered = x - mean
        y = centered * centered  # y's buffer holds the squares until the output overwrites it
        var = (ones @ y) / n
        inv_std = torch.rsqrt(var + eps)
        torch.addcmul(beta, centered, gamma * inv_std, out=y)
        if running_mean is not None and running_var is not None:
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_((var * (n / (n - 1))).to(running_var.dtype), momentum)

        need_x, need_gamma, _ = ctx.needs_input_grad[:3]
        ctx.save_for_backward(
            centered if (need_x or need_gamma) else None,
            inv_std if (need_x or need_gamma) else None,
            gamma if need_x else None,
        )
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor):
        if ctx.kernels is not None:
            grads = kernel_grads(ctx, dy, ctx.kernels.batch_norm_backward)
            return (*grads, None, None, None, None)
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
        return (
            dx,
            dgamma if need_gamma else None,
            dbeta if need_beta else None,
            None,
            None,
            None,
            None,
        )


class _BatchNormBase(nn.Module):
    """Parameters, running statistics, shape checks and eval path shared by both modules."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Statistics in fp32 when ``x`` is bf16/fp16 (``statistics_dtype``), with autocast off
        inside; the output in x's dtype, as PyTorch's norms under autocast."""
        check_features(x, self.num_features, type(self).__name__)
        with torch.autocast(x.device.type, enabled=False):  # its matmuls would run in bf16
            return self._forward(x.to(statistics_dtype(x))).to(x.dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if not self.training:
            scale = self.gamma * torch.rsqrt(self.running_var + self.eps)
            return torch.addcmul(self.beta - self.running_mean * scale, x, scale)
        if x.shape[0] < 2:
            raise ValueError(
                f"{name} in training mode needs a batch of at least 2 samples to estimate the "
                f"variance, got input of shape {tuple(x.shape)}; call .eval() to predict on one"
            )
        self.num_batches_tracked += 1
        factor = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked)
        return self._normalize_batch(x, factor)

    def _normalize_batch(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        raise NotImplementedError


class CustomBatchNormAutograd(_BatchNormBase):
    """Reference version: the forward pass spelled out, gradients left to autograd."""

    def _normalize_batch(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        n = x.shape[0]
        mean = x.mean(dim=0)
        centered = x - mean
        var = (centered * centered).mean(dim=0)
        x_hat = centered / torch.sqrt(var + self.eps)
        with torch.no_grad():
            self.running_mean.lerp_(mean, factor)
            self.running_var.lerp_(var * (n / (n - 1)), factor)
        return self.gamma * x_hat + self.beta


class CustomBatchNormManualModule(_BatchNormBase):
    """BatchNorm whose training-mode gradient is the hand-written one above."""

    def _normalize_batch(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        return CustomBatchNormManualFunction.apply(
            x, self.gamma, self.beta, self.eps, self.running_mean, self.running_var, factor
        )
