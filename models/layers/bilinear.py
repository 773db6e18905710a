"""Bilinear projection (Yu, Gao, Zhou, Zhang, IEEE TNNLS 2021, arXiv 2011.01391).

Input X: (N, C_in, d1, d2) -> output Y: (N, C_out, k1, k2) with, per output channel o,

    Y_o = sum_i U_{o,i}^T X_i V_{o,i} + B_o,   U: (C_out, C_in, d1, k1), V: (C_out, C_in, d2, k2).

Parameters: C_in*C_out*(d1*k1 + d2*k2) + C_out*k1*k2. With X flattened row-major (as torch does)
one channel pair is the dense layer with weight kron(U^T, V^T) (k1*k2 x d1*d2).

Evaluation, in the cheaper order (models.costs.bilinear_order), by one of three paths that
``models.layers.bilinear_paths.choose_path`` picks per call: the C kernel of
models.native.bilinear_pair (float32 on a CPU with AVX-512F or AVX2 + FMA, any channel counts),
else on the torch path one GEMM and one broadcast bmm for C_in = C_out = 1, or two batched GEMMs
over all channels for more (models.layers.bilinear_torch; CUDA, float64 and autocast take
these). All give the same values to the rounding of their dtype.

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
from models.layers.bilinear_paths import choose_path
from models.layers.bilinear_torch import batched_pairs, single_pair_torch
from models.native import bilinear_pair as native_pair

__all__ = ["BilinearProjection", "bilinear_projection", "single_pair"]


def bilinear_projection(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *,
                        path: str = "auto") -> Tensor:
    """Functional core. x (N, C_in, d1, d2), u (C_out, C_in, d1, k1), v (C_out, C_in, d2, k2),
    bias (C_out, k1, k2) or None -> (N, C_out, k1, k2). ``path``: see ``choose_path``."""
    c_out, _, _, k1 = u.shape
    return _project(x, u, v, bias, out_shape=(c_out, k1, v.shape[3]), path=path)


def single_pair(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *,
                out_shape: tuple[int, ...], path: str = "auto") -> Tensor:
    """C_in = C_out = 1: x (N, ...) with d1*d2 features per sample (any shape: (N, 1, d1, d2),
    (N, D), (N, 1, H, W)), u (1, 1, d1, k1), v (1, 1, d2, k2), bias (1, k1, k2) or None ->
    (N, *out_shape). Taking and giving any shape spares the module two reshape nodes per step."""
    return _project(x, u, v, bias, out_shape=out_shape, path=path)


def _project(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *,
             out_shape: tuple[int, ...], path: str) -> Tensor:
    """x (N, ...) with C_in*d1*d2 features per sample -> (N, *out_shape)."""
    _, c_in, d1, k1 = u.shape
    d2, k2 = v.shape[2], v.shape[3]
    right = bilinear_order(in_grid=(d1, d2), out_grid=(k1, k2)) == "right"
    chosen = choose_path(x, u, v, bias, path=path)
    if chosen == "native":
        return native_pair.forward(x, u, v, bias, right=right, out_shape=out_shape)
    if chosen == "single":
        return single_pair_torch(x, u, v, bias, right=right, out_shape=out_shape)
    y = batched_pairs(x.reshape(x.shape[0], c_in, d1, d2), u, v, bias, right=right)
    return y.reshape(x.shape[0], *out_shape)  # (N, C_out, k1, k2) -> (N, *out_shape)


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
        return _project(x, self.U, self.V, self.bias, out_shape=self.out_shape, path="auto")

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
