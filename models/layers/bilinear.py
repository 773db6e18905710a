"""Bilinear projection (Yu, Gao, Zhou, Zhang, IEEE TNNLS 2021, arXiv 2011.01391).

Input X: (N, C_in, d1, d2) -> output Y: (N, C_out, k1, k2) with, per output channel o,

    Y_o = sum_i U_{o,i}^T X_i V_{o,i} + B_o,   U: (C_out, C_in, d1, k1), V: (C_out, C_in, d2, k2).

Parameters: C_in*C_out*(d1*k1 + d2*k2) + C_out*k1*k2. With X flattened row-major (as torch does)
one channel pair is the dense layer with weight kron(U^T, V^T) (k1*k2 x d1*d2).

Evaluation, in the cheaper order (models.costs.bilinear_order). For float32 on a CPU with
AVX-512F, whatever the channel counts: the C kernel of models.native.bilinear_pair (per sample,
the products run back to back on L1-resident matrices). Otherwise, the torch path: a few large
matrix products. For C_in = C_out = 1 (the layer the search uses most) that is one plain GEMM and
one batched GEMM on the batch-major tensors, with no copy and no transpose of activations or
gradients:

- right order: T = X V as (N*d1, d2) @ (d2, k2) (the batch folds into the rows), then
  Y_n = U^T T_n as a bmm with U^T broadcast over the batch (stride 0, never materialised);
- left order: Z_n = U^T X_n (bmm, broadcast), then Y = Z V as (N*k1, d2) @ (d2, k2).

That pair is one autograd node (``_SinglePair``) whose backward is the four products the
gradients need (right order: dT = U dY_n, dX = dT V^T, dV = X^T dT, dU = sum_n T_n dY_n^T)
plus the batch sum for the bias. Letting autograd derive them from the ops took 4-8 % longer per
step (about ten nodes instead of one; same-process A/B, D = 1024, batch 256). An earlier version
kept activations "p-major" ((d1, N, d2) in memory) to make every product a plain GEMM; its
transposing copies read with a 4 KiB stride and cost more than they saved. Several channels use
two einsum contractions.

Initialisation (He-style, for ReLU stacks). With U, V independent, zero mean,
Var(Y) = C_in * d1 * d2 * Var(U) * Var(V) * E[X^2] (cross terms vanish). After a ReLU,
E[X^2] = Var(previous Y) / 2, so activations keep their variance when
Var(U) * Var(V) = 2 / (C_in * d1 * d2). We split it evenly per factor dimension:
Var(U) = sqrt(2 / C_in) / d1, Var(V) = sqrt(2 / C_in) / d2 (normal draws), bias 0.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from models.costs import bilinear_order
from models.errors import SpecError
from models.native import bilinear_pair as native_pair

__all__ = ["BilinearProjection", "bilinear_projection"]


def bilinear_projection(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *,
                        native: bool = True) -> Tensor:
    """Functional core. x (N, C_in, d1, d2), u (C_out, C_in, d1, k1), v (C_out, C_in, d2, k2),
    bias (C_out, k1, k2) or None -> (N, C_out, k1, k2). ``native`` as in ``single_pair``."""
    c_out, c_in, d1, k1 = u.shape
    d2, k2 = v.shape[2], v.shape[3]
    if c_in == 1 and c_out == 1:
        return single_pair(x, u, v, bias, out_shape=(1, k1, k2), native=native)
    order = bilinear_order(in_grid=(d1, d2), out_grid=(k1, k2))
    if native and native_pair.usable(x, u, v, bias):
        return native_pair.forward(x, u, v, bias, right=order == "right",
                                   out_shape=(c_out, k1, k2))
    if order == "right":
        t = torch.einsum("nipq,oiqs->noips", x, v)  # (N, C_out, C_in, d1, k2)
        y = torch.einsum("oipr,noips->nors", u, t)  # (N, C_out, k1, k2)
    else:
        z = torch.einsum("oipr,nipq->noirq", u, x)  # (N, C_out, C_in, k1, d2)
        y = torch.einsum("noirq,oiqs->nors", z, v)  # (N, C_out, k1, k2)
    if bias is not None:
        y = y + bias  # (N, C_out, k1, k2) + (C_out, k1, k2)
    return y


def single_pair(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *,
                out_shape: tuple[int, ...], native: bool = True) -> Tensor:
    """C_in = C_out = 1 as one autograd node: x (N, ...) with d1*d2 features per sample (any
    shape: (N, 1, d1, d2), (N, D), (N, 1, H, W)), u (1, 1, d1, k1), v (1, 1, d2, k2), bias
    (1, k1, k2) or None -> (N, *out_shape). Taking and giving any shape spares the module two
    reshape nodes per step.

    ``native=True`` takes the C kernel (``models.native.bilinear_pair``) wherever it can run
    (float32 on a CPU with AVX-512F) and the torch path elsewhere; False always takes the torch
    path. Both give the same values to float32 rounding."""
    d1, k1 = u.shape[2], u.shape[3]
    d2, k2 = v.shape[2], v.shape[3]
    right = bilinear_order(in_grid=(d1, d2), out_grid=(k1, k2)) == "right"
    if native and native_pair.usable(x, u, v, bias):
        return native_pair.forward(x, u, v, bias, right=right, out_shape=out_shape)
    out: Tensor = _SinglePair.apply(x, u, v, bias, right, out_shape)  # type: ignore[no-untyped-call]
    return out


class _SinglePair(torch.autograd.Function):
    """See ``single_pair``. ``mid`` is T = X V (right order) or Z = U^T X (left order)."""

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
        gy = grad.reshape(n, k1, k2)  # a view unless the incoming gradient is strided
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


class BilinearProjection(nn.Module):
    """C_out parallel bilinear maps of C_in channels of d1 x d2 into k1 x k2 each.

    ``forward`` accepts any input with C_in*d1*d2 features per sample ((N, C_in, d1, d2),
    (N, C_in, H, W) with H*W = d1*d2, or flat (N, D)); it returns (N, *out_shape), out_shape
    defaulting to (C_out, k1, k2).
    """

    def __init__(self, in_channels: int, out_channels: int, *, in_grid: tuple[int, int],
                 out_grid: tuple[int, int], bias: bool = True,
                 out_shape: tuple[int, ...] | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            *((f"in_grid[{i}]", d) for i, d in enumerate(in_grid)),
                            *((f"out_grid[{i}]", d) for i, d in enumerate(out_grid))):
            if value < 1:
                raise SpecError(name, f"got {value}; must be a positive integer")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_grid, self.out_grid = in_grid, out_grid
        (d1, d2), (k1, k2) = in_grid, out_grid
        shape = out_shape if out_shape is not None else (out_channels, k1, k2)
        if math.prod(shape) != out_channels * k1 * k2:
            raise SpecError("out_shape", f"got {shape}; must hold C_out*k1*k2 = "
                            f"{out_channels * k1 * k2} values")
        self.out_shape = tuple(shape)
        def empty(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape, device=device, dtype=dtype))

        self.U = empty(out_channels, in_channels, d1, k1)
        self.V = empty(out_channels, in_channels, d2, k2)
        self.bias = empty(out_channels, k1, k2) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-style init: Var(U) Var(V) = 2 / (C_in d1 d2), split evenly (see module docstring)."""
        (d1, d2) = self.in_grid
        gain = math.sqrt(2.0 / self.in_channels)
        nn.init.normal_(self.U, std=math.sqrt(gain / d1))
        nn.init.normal_(self.V, std=math.sqrt(gain / d2))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        (d1, d2) = self.in_grid
        features = self.in_channels * d1 * d2
        if x.dim() < 2 or x.numel() != x.shape[0] * features:
            raise ValueError(
                f"input shape {tuple(x.shape)}: this bilinear layer takes (N, ...) with "
                f"C_in*d1*d2 = {self.in_channels}*{d1}*{d2} = {features} features per sample; "
                "reshape the input or build the layer for its shape")
        if self.in_channels == 1 and self.out_channels == 1:
            return single_pair(x, self.U, self.V, self.bias, out_shape=self.out_shape)
        x = x.reshape(x.shape[0], self.in_channels, d1, d2)  # (N, C_in, d1, d2), a view if possible
        y = bilinear_projection(x, self.U, self.V, self.bias)  # (N, C_out, k1, k2)
        return y.reshape(y.shape[0], *self.out_shape)

    def dense_weight(self) -> Tensor:
        """The equivalent dense weight (C_out*k1*k2, C_in*d1*d2) for row-major flattening."""
        c_out, c_in = self.out_channels, self.in_channels
        (d1, d2), (k1, k2) = self.in_grid, self.out_grid
        # W[o, r, s, i, p, q] = U[o, i, p, r] * V[o, i, q, s]
        w = torch.einsum("oipr,oiqs->orsipq", self.U, self.V)  # (C_out, k1, k2, C_in, d1, d2)
        return w.reshape(c_out * k1 * k2, c_in * d1 * d2)

    def extra_repr(self) -> str:
        order = bilinear_order(in_grid=self.in_grid, out_grid=self.out_grid)
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"in_grid={self.in_grid}, out_grid={self.out_grid}, "
                f"bias={self.bias is not None}, order={order}")
