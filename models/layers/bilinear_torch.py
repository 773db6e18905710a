"""The bilinear projection's torch paths: plain matrix products on any device and dtype.

Both run on CPU and CUDA alike and under autocast (their products run in the autocast dtype, as
``nn.Linear`` does), so the CPU tests check the same code a GPU runs.

``single_pair_torch`` (C_in = C_out = 1, the layer the search uses most): one plain GEMM and one
batched GEMM on the batch-major tensors, with no copy and no transpose of activations:

- right order: T = X V as (N*d1, d2) @ (d2, k2) (the batch folds into the rows), then
  Y_n = U^T T_n as a bmm with U^T broadcast over the batch (stride 0, never materialised);
- left order: Z_n = U^T X_n (bmm, broadcast), then Y = Z V as (N*k1, d2) @ (d2, k2).

That pair is one autograd node (``_SinglePair``) whose backward is the four products the
gradients need (right order: dT = U dY_n, dX = dT V^T, dV = X^T dT, dU = sum_n T_n dY_n^T)
plus the batch sum for the bias. Letting autograd derive them from the ops took 4-8 % longer per
step (about ten nodes instead of one; same-process A/B, D = 1024, batch 256).

``batched_pairs`` (any C_in, C_out): two batched GEMMs, no loop over channels. Right order, with
V_i^cat = [V_i1 | ... | V_iCo] (d2 x C_out*k2) and U_o^cat = [U_1o; ...; U_Cio] (C_in*d1 x k1):

    T = bmm over i of X_i (N*d1, d2) @ V_i^cat        -> (C_in, N*d1, C_out*k2)
    Y = bmm over o of U_o^cat^T @ T_o (C_in*d1, N*k2)  -> (C_out, k1, N*k2)

with one copy of T between them (its (i, n, p, o, s) order to (o, i, p, n, s)). The left order
is the right order of the transposed problem (Y_o^T = sum_i V_oi^T X_i^T U_oi). Autograd
derives the backward (bmm's backward is two bmm's), so any gradient layout is accepted.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["batched_pairs", "single_pair_torch"]


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype autocast computes matrix products in on x's device (None when it is off)."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None


def single_pair_torch(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *, right: bool,
                      out_shape: tuple[int, ...]) -> Tensor:
    """x (N, ...) with d1*d2 features per sample, u (1, 1, d1, k1), v (1, 1, d2, k2), bias
    (1, k1, k2) or None -> (N, *out_shape)."""
    dtype = _autocast_dtype(x)
    if dtype is not None:  # as nn.Linear computes under autocast (the Function sees no autocast)
        x, u, v = x.to(dtype), u.to(dtype), v.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    out: Tensor = _SinglePair.apply(x, u, v, bias, right, out_shape)  # type: ignore[no-untyped-call]
    return out


class _SinglePair(torch.autograd.Function):
    """See ``single_pair_torch``. ``mid`` is T = X V (right order) or Z = U^T X (left order)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, right: bool,
        out_shape: tuple[int, ...],
    ) -> Tensor:
        n = x.shape[0]
        (d1, k1), (d2, k2) = u.shape[2:], v.shape[2:]
        u2, v2 = u.view(d1, k1), v.view(d2, k2)
        u_t = u2.t().expand(n, k1, d1)  # (N, k1, d1), stride 0 over N: no copy
        if right:
            rows = x.reshape(n * d1, d2)  # a view unless x is strided
            mid = torch.mm(rows, v2).view(n, d1, k2)  # (N*d1, d2) @ (d2, k2): T
            y = torch.bmm(u_t, mid)  # (N, k1, d1) @ (N, d1, k2) -> (N, k1, k2)
            saved_x = rows
        else:
            saved_x = x.reshape(n, d1, d2)
            mid = torch.bmm(u_t, saved_x)  # (N, k1, d1) @ (N, d1, d2) -> (N, k1, d2): Z
            y = torch.mm(mid.view(n * k1, d2), v2).view(n, k1, k2)  # (N*k1, d2) @ (d2, k2)
        if bias is not None:
            y.add_(bias.view(k1, k2))
        ctx.right = right
        ctx.has_bias = bias is not None
        ctx.x_shape = x.shape
        ctx.save_for_backward(saved_x, u2, v2, mid)
        return y.view(n, *out_shape)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        saved_x, u2, v2, mid = ctx.saved_tensors
        need_x, need_u, need_v, need_bias = ctx.needs_input_grad[:4]
        (d1, k1), (d2, k2) = u2.shape, v2.shape
        n = grad.shape[0]
        # The upstream gradient may have any layout (a transposed or expanded view): one copy
        # when it is not contiguous, none when it is.
        gy = grad.reshape(n, k1, k2).contiguous()
        gx = gu = gv = gb = None
        if ctx.right:  # y_n = U^T T_n, T = X V
            gmid = torch.bmm(u2.expand(n, d1, k1), gy)  # dT_n = U dY_n: (N, d1, k2)
            rows = gmid.view(n * d1, k2)
            if need_v:
                gv = torch.mm(saved_x.t(), rows)  # X^T dT: (d2, k2)
            if need_x:
                gx = torch.mm(rows, v2.t()).view(ctx.x_shape)  # dT V^T
            if need_u:
                gu = torch.bmm(mid, gy.transpose(1, 2)).sum(0)  # sum_n T_n dY_n^T: (d1, k1)
        else:  # y = Z V, Z_n = U^T X_n
            rows = gy.view(n * k1, k2)
            gmid = torch.mm(rows, v2.t()).view(n, k1, d2)  # dZ = dY V^T
            if need_v:
                gv = torch.mm(mid.view(n * k1, d2).t(), rows)  # Z^T dY: (d2, k2)
            if need_x:
                gx = torch.bmm(u2.expand(n, d1, k1), gmid).view(ctx.x_shape)  # U dZ_n
            if need_u:
                gu = torch.bmm(saved_x, gmid.transpose(1, 2)).sum(0)  # sum_n X_n dZ_n^T
        if need_bias and ctx.has_bias:
            gb = gy.sum(0).view(1, k1, k2)
        return (gx, None if gu is None else gu.view(1, 1, d1, k1),
                None if gv is None else gv.view(1, 1, d2, k2), gb, None, None)


def batched_pairs(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *,
                  right: bool) -> Tensor:
    """x (N, C_in, d1, d2) (any strides), u (C_out, C_in, d1, k1), v (C_out, C_in, d2, k2),
    bias (C_out, k1, k2) or None -> (N, C_out, k1, k2)."""
    # left order: Y_o^T = sum_i V_oi^T X_i^T U_oi, the right order with U and V swapped
    y = _right_order(x, u, v) if right else _right_order(x.transpose(2, 3), v, u).transpose(2, 3)
    if bias is not None:
        y = y + bias.to(y.dtype)  # (N, C_out, k1, k2) + (C_out, k1, k2)
    return y


def _right_order(x: Tensor, u: Tensor, v: Tensor) -> Tensor:
    n, c_in, d1, d2 = x.shape
    c_out, k1, k2 = u.shape[0], u.shape[3], v.shape[3]
    xi = x.transpose(0, 1).reshape(c_in, n * d1, d2)  # (C_in, N*d1, d2)
    v_cat = v.permute(1, 2, 0, 3).reshape(c_in, d2, c_out * k2)  # (C_in, d2, C_out*k2)
    t = torch.bmm(xi, v_cat)  # (C_in, N*d1, C_out*k2): T[i, n, p, o, s]
    t = t.view(c_in, n, d1, c_out, k2).permute(3, 0, 2, 1, 4)  # (C_out, C_in, d1, N, k2)
    t = t.reshape(c_out, c_in * d1, n * k2)  # one copy of T
    u_cat = u.reshape(c_out, c_in * d1, k1).transpose(1, 2)  # (C_out, k1, C_in*d1), a view
    y = torch.bmm(u_cat, t)  # (C_out, k1, N*k2)
    return y.view(c_out, k1, n, k2).permute(2, 0, 1, 3)  # (N, C_out, k1, k2), a view
