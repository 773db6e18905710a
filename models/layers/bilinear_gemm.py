"""One channel pair of a bilinear projection as two plain GEMMs, forward and backward, no copies.

Layout trick: hold the (N, d1, d2) input "row-major by p", i.e. in memory as (d1, N, d2) (call it
p-major). Then both contractions are single GEMMs on views:

- right order: T = X' V with X' = (d1*N, d2) @ (d2, k2) -> (d1, N*k2); Y' = U^T T -> (k1, N*k2)
- left order:  Z = U^T X' with X' = (d1, N*d2) -> (k1, N*d2); Y' = Z (k1*N, d2) @ V -> (k1*N, k2)

and Y' is again p-major: (k1, N, k2) in memory, returned as an (N, k1, k2) view. A stack of
bilinear layers (with ReLUs between, which keep the layout) therefore runs without a single copy;
a contiguous (N, d1, d2) input costs one transposing copy, as does a contiguous incoming gradient.
The backward pass is four GEMMs on the same views (plus a sum for the bias).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

__all__ = ["pair_projection", "to_p_major"]


def to_p_major(x: Tensor) -> Tensor:
    """(N, a, b) -> the (a, N, b) contiguous tensor holding it (a view when already p-major)."""
    return x.transpose(0, 1).contiguous()  # (a, N, b)


class _PairProjection(torch.autograd.Function):
    """Y = U^T X V + B per sample; X (N, d1, d2), U (d1, k1), V (d2, k2), B (k1, k2) or None."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None,
                right: bool) -> Tensor:
        n, d1, d2 = x.shape
        k1, k2 = u.shape[1], v.shape[1]
        xp = to_p_major(x)  # (d1, N, d2)
        if right:
            mid = torch.mm(xp.view(d1 * n, d2), v)  # (d1*N, d2) @ (d2, k2) -> (d1*N, k2)
            yp = torch.mm(u.t(), mid.view(d1, n * k2))  # (k1, d1) @ (d1, N*k2) -> (k1, N*k2)
        else:
            mid = torch.mm(u.t(), xp.view(d1, n * d2))  # (k1, d1) @ (d1, N*d2) -> (k1, N*d2)
            yp = torch.mm(mid.view(k1 * n, d2), v)  # (k1*N, d2) @ (d2, k2) -> (k1*N, k2)
        yp = yp.view(k1, n, k2)  # (k1, N, k2)
        if bias is not None:
            yp.add_(bias.unsqueeze(1))  # + (k1, 1, k2)
        ctx.save_for_backward(xp, u, v, mid)
        ctx.right = right
        ctx.has_bias = bias is not None
        return yp.transpose(0, 1)  # (N, k1, k2) view, p-major in memory

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        xp, u, v, mid = ctx.saved_tensors  # type: ignore[attr-defined]
        d1, n, d2 = xp.shape
        k1, k2 = u.shape[1], v.shape[1]
        gp = to_p_major(grad)  # (k1, N, k2)
        if ctx.right:  # type: ignore[attr-defined]
            g2 = gp.view(k1, n * k2)
            grad_u = torch.mm(mid.view(d1, n * k2), g2.t())  # (d1, N*k2) @ (N*k2, k1)
            g_mid = torch.mm(u, g2).view(d1 * n, k2)  # (d1, k1) @ (k1, N*k2) -> (d1*N, k2)
            grad_v = torch.mm(xp.view(d1 * n, d2).t(), g_mid)  # (d2, d1*N) @ (d1*N, k2)
            grad_xp = torch.mm(g_mid, v.t())  # (d1*N, k2) @ (k2, d2) -> (d1*N, d2)
        else:
            g2 = gp.view(k1 * n, k2)
            grad_v = torch.mm(mid.view(k1 * n, d2).t(), g2)  # (d2, k1*N) @ (k1*N, k2)
            g_mid = torch.mm(g2, v.t()).view(k1, n * d2)  # (k1*N, d2) -> (k1, N*d2)
            grad_u = torch.mm(xp.view(d1, n * d2), g_mid.t())  # (d1, N*d2) @ (N*d2, k1)
            grad_xp = torch.mm(u, g_mid)  # (d1, k1) @ (k1, N*d2) -> (d1, N*d2)
        grad_x = grad_xp.view(d1, n, d2).transpose(0, 1)  # (N, d1, d2) view
        grad_b = gp.sum(dim=1) if ctx.has_bias else None  # type: ignore[attr-defined]
        return grad_x, grad_u, grad_v, grad_b, None


def pair_projection(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *,
                    right: bool) -> Tensor:
    """U^T X V (+ B) for x (N, d1, d2), u (d1, k1), v (d2, k2), bias (k1, k2) -> (N, k1, k2).

    The result is p-major in memory (see the module docstring); ``right`` picks X V first.
    """
    out: Tensor = _PairProjection.apply(x, u, v, bias, right)  # type: ignore[no-untyped-call]
    return out
