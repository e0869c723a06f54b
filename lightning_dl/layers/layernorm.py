"""LayerNorm over (batch, features): statistics per sample across its features.

Same trio as ``batchnorm.py``: autograd reference, ``autograd.Function`` with the analytic
backward, and the module around it. Each sample normalises itself (no running statistics), so
train and eval agree and a batch of one is fine.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from lightning_dl.layers._base import Norm
from lightning_dl.layers._kernels import kernel_forward, kernel_grads, use_kernels


class CustomLayerNormManualFunction(torch.autograd.Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta with each row's biased mean/var.

    With x_hat the normalised row, r = 1 / sqrt(var + eps) per row and D features:
        dbeta  = sum_n dy
        dgamma = sum_n dy * x_hat
        dx     = r * (dy * gamma - mean_d(dy * gamma) - x_hat * mean_d(dy * gamma * x_hat))
    where mean_d(dy * gamma) = dy @ gamma / D and mean_d(dy * gamma * x_hat) =
    (dy * x_hat) @ gamma / D reuse the product dy * x_hat that dgamma needs anyway.
    In torch ops below (the path for GPUs); on CPU as the fused loops of ``_kernels.py``.
    """

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5
    ) -> torch.Tensor:
        ctx.kernels = use_kernels(x, gamma)
        if ctx.kernels is not None:
            return kernel_forward(ctx, x, gamma, beta, eps, per_row=True)[0]
        d = x.shape[1]
        x_hat = x - x.mean(dim=1, keepdim=True)
        sum_sq = torch.linalg.vector_norm(x_hat, dim=1, keepdim=True).square_()
        rstd = torch.rsqrt(sum_sq / d + eps)
        x_hat.mul_(rstd)
        need_x, need_gamma, _ = ctx.needs_input_grad[:3]
        ctx.save_for_backward(
            x_hat if (need_x or need_gamma) else None,
            rstd if need_x else None,
            gamma if need_x else None,
        )
        return torch.addcmul(beta, x_hat, gamma)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor):
        if ctx.kernels is not None:
            return (*kernel_grads(ctx, dy), None)
        need_x, need_gamma, need_beta = ctx.needs_input_grad[:3]
        x_hat, rstd, gamma = ctx.saved_tensors
        n, d = dy.shape
        ones = dy.new_ones(n)
        dx = dgamma = None
        dbeta = ones @ dy if need_beta else None
        if need_x or need_gamma:
            buf = dy * x_hat
            if need_gamma:
                dgamma = ones @ buf
        if need_x:
            mean_gx = (buf @ gamma).unsqueeze(1) / d
            mean_g = (dy @ gamma).unsqueeze(1) / d
            dx = torch.addcmul(-mean_g, dy, gamma, out=buf)  # buf is free again: reuse it
            dx.addcmul_(x_hat, -mean_gx).mul_(rstd)
        return dx, dgamma, dbeta, None


class CustomLayerNormAutograd(Norm):
    """Reference version: the forward pass spelled out, gradients left to autograd."""

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        centered = x - mean
        var = (centered * centered).mean(dim=1, keepdim=True)
        return self.gamma * centered / torch.sqrt(var + self.eps) + self.beta


class CustomLayerNormManualModule(Norm):
    """LayerNorm whose gradient is the hand-written one above."""

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return CustomLayerNormManualFunction.apply(x, self.gamma, self.beta, self.eps)
