"""Bilinear projection (Yu, Gao, Zhou, Zhang, IEEE TNNLS 2021, arXiv 2011.01391).

Input X: (N, C_in, d1, d2) -> output Y: (N, C_out, k1, k2) with, per output channel o,

    Y_o = sum_i U_{o,i}^T X_i V_{o,i} + B_o,   U: (C_out, C_in, d1, k1), V: (C_out, C_in, d2, k2).

Parameters: C_in*C_out*(d1*k1 + d2*k2) + C_out*k1*k2. With X flattened row-major (as torch does)
one channel pair is the dense layer with weight kron(U^T, V^T) (k1*k2 x d1*d2).

Evaluation: a few large matrix products, in the cheaper order (models.costs.bilinear_order).
For C_in = C_out = 1 (the layer the search uses most) it is one plain GEMM and one batched GEMM on
the batch-major tensors, with no copy and no transpose of activations or gradients:

- right order: T = X V as (N*d1, d2) @ (d2, k2) (the batch folds into the rows), then
  Y_n = U^T T_n as a bmm with U^T broadcast over the batch (stride 0, never materialised);
- left order: Z_n = U^T X_n (bmm, broadcast), then Y = Z V as (N*k1, d2) @ (d2, k2).

Autograd derives the backward from these ops: two plain GEMMs, one broadcast bmm and one bmm whose
(N, ., .) result is summed over the batch for dU. An earlier version kept activations "p-major"
((d1, N, d2) in memory) to make every product a plain GEMM; its transposing copies read with a 4 KiB
stride and cost more than they saved (tests/benchmarks/bench_bilinear.py). Several channels use two
einsum contractions.

Initialisation (He-style, for ReLU stacks). With U, V independent, zero mean,
Var(Y) = C_in * d1 * d2 * Var(U) * Var(V) * E[X^2] (cross terms vanish). After a ReLU,
E[X^2] = Var(previous Y) / 2, so activations keep their variance when
Var(U) * Var(V) = 2 / (C_in * d1 * d2). We split it evenly per factor dimension:
Var(U) = sqrt(2 / C_in) / d1, Var(V) = sqrt(2 / C_in) / d2 (normal draws), bias 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.costs import bilinear_order
from models.errors import SpecError

__all__ = ["BilinearProjection", "bilinear_projection"]


def bilinear_projection(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
    """Functional core. x (N, C_in, d1, d2), u (C_out, C_in, d1, k1), v (C_out, C_in, d2, k2),
    bias (C_out, k1, k2) or None -> (N, C_out, k1, k2)."""
    c_out, c_in, d1, k1 = u.shape
    d2, k2 = v.shape[2], v.shape[3]
    order = bilinear_order(in_grid=(d1, d2), out_grid=(k1, k2))
    if c_in == 1 and c_out == 1:
        return _single_pair(x, u.view(d1, k1), v.view(d2, k2), bias, right=order == "right")
    if order == "right":
        t = torch.einsum("nipq,oiqs->noips", x, v)  # (N, C_out, C_in, d1, k2)
        y = torch.einsum("oipr,noips->nors", u, t)  # (N, C_out, k1, k2)
    else:
        z = torch.einsum("oipr,nipq->noirq", u, x)  # (N, C_out, C_in, k1, d2)
        y = torch.einsum("noirq,oiqs->nors", z, v)  # (N, C_out, k1, k2)
    if bias is not None:
        y = y + bias  # (N, C_out, k1, k2) + (C_out, k1, k2)
    return y


def _single_pair(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *, right: bool) -> Tensor:
    """One channel pair: x (N, 1, d1, d2), u (d1, k1), v (d2, k2), bias (1, k1, k2) or None."""
    n, _, d1, d2 = x.shape
    k1, k2 = u.shape[1], v.shape[1]
    u_t = u.t().expand(n, k1, d1)  # (N, k1, d1), stride 0 over N: no copy
    if right:
        t = torch.mm(x.reshape(n * d1, d2), v)  # (N*d1, d2) @ (d2, k2) -> (N*d1, k2)
        y = torch.bmm(u_t, t.view(n, d1, k2))  # (N, k1, d1) @ (N, d1, k2) -> (N, k1, k2)
    else:
        z = torch.bmm(u_t, x.reshape(n, d1, d2))  # (N, k1, d1) @ (N, d1, d2) -> (N, k1, d2)
        y = torch.mm(z.view(n * k1, d2), v).view(n, k1, k2)  # (N*k1, d2) @ (d2, k2)
    if bias is not None:
        y.add_(bias.view(k1, k2))  # in place: neither product's backward needs y
    return y.unsqueeze(1)  # (N, 1, k1, k2)


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
