"""Low-rank (SVD-trained) linear projection: y = U diag(s) V^T x + b.

Training parameters: r*(m + n) + r (+ m bias), m = out_features, n = in_features.
``to_compact()`` folds s into U: two nn.Linear with exactly r*(m + n) weights (+ m bias).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.errors import SpecError
from models.layers.shapes import flat_samples, shaped_output
from models.layers.svd import SVDFactors

__all__ = ["LowRankLinear"]


class LowRankLinear(SVDFactors):
    """Flattens (N, ...) -> (N, in_features), returns (N, *out_shape) (default (out_features,))."""

    def __init__(self, in_features: int, out_features: int, *, rank: int | None = None,
                 bias: bool = True, out_shape: tuple[int, ...] | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        shape = out_shape if out_shape is not None else (out_features,)
        if math.prod(shape) != out_features:
            raise SpecError("out_shape", f"got {shape}; must hold out_features = {out_features} "
                            "values")
        self.out_shape = tuple(shape)
        self._init_factors(m=out_features, n=in_features, rank=rank, fan_in=in_features,
                           device=device, dtype=dtype)
        self.bias = (nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype))
                     if bias else None)

    @classmethod
    def from_dense(cls, layer: nn.Linear, *, rank: int | None = None,
                   out_shape: tuple[int, ...] | None = None) -> LowRankLinear:
        """Initialise from the SVD of ``layer.weight`` (exact at full rank)."""
        w = layer.weight.detach()
        new = cls(layer.in_features, layer.out_features, rank=rank,
                  bias=layer.bias is not None, out_shape=out_shape, device=w.device,
                  dtype=w.dtype)
        u, s, vh = torch.linalg.svd(w, full_matrices=False)  # (m, k), (k,), (k, n)
        r = new.rank
        new._set_factors(u[:, :r], s[:r], vh[:r].t())
        if layer.bias is not None and new.bias is not None:
            new.bias = nn.Parameter(layer.bias.detach().clone())
        return new

    def forward(self, x: Tensor) -> Tensor:
        t = flat_samples(x) @ self.V  # (N, n) @ (n, r) -> (N, r)
        y = F.linear(t * self.s, self.U, self.bias)  # (N, r) -> (N, m)
        return shaped_output(y, self.out_shape)

    def dense_weight(self) -> Tensor:
        """The equivalent nn.Linear weight (out_features, in_features)."""
        return self.matrix()

    @torch.no_grad()
    def to_compact(self) -> nn.Sequential:
        """Inference module: Flatten, Linear(n, r, no bias) = V^T, Linear(r, m) = U diag(s),
        Unflatten to out_shape. Exactly r*(m + n) weights (+ m bias)."""
        r = self.rank
        device, dtype = self.U.device, self.U.dtype
        first = nn.Linear(self.in_features, r, bias=False, device=device, dtype=dtype)
        second = nn.Linear(r, self.out_features, bias=self.bias is not None, device=device,
                           dtype=dtype)
        first.weight.copy_(self.V.t())
        second.weight.copy_(self.U * self.s)
        if self.bias is not None:
            second.bias.copy_(self.bias)
        return nn.Sequential(nn.Flatten(), first, second, nn.Unflatten(1, self.out_shape))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, bias={self.bias is not None}")
