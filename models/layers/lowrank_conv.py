"""Low-rank (SVD-trained) k x k convolution, stride 1, 'same' padding, in one of two forms.

- ``channel``: W (C_out, C_in, k, k) viewed as (C_out, C_in*k*k) = U diag(s) V^T; evaluated as a
  k x k convolution C_in -> r (weight V^T) then a 1 x 1 convolution r -> C_out (weight U).
- ``spatial``: W viewed as M[(o, x), (i, y)] = W[o, i, y, x], (C_out*k, C_in*k); evaluated as a
  k x 1 convolution C_in -> r (weight V^T) then a 1 x k convolution r -> C_out (weight U).
  Both steps zero-pad, so the pair equals the k x k convolution rebuilt from the factors.

Training parameters r*(m + n) + r + C_out (bias); ``to_compact()`` folds s into the first step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.errors import SpecError
from models.layers.svd import SVDFactors

__all__ = ["LowRankConv2d"]

DECOMPOSITIONS = ("channel", "spatial")


class LowRankConv2d(SVDFactors):
    """(N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 decomposition: str = "channel", rank: int | None = None, bias: bool = True,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if decomposition not in DECOMPOSITIONS:
            raise SpecError("decomposition", f"got {decomposition!r}; allowed: "
                            f"{', '.join(DECOMPOSITIONS)}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise SpecError("kernel_size", f"got {kernel_size}; must be an odd integer >= 1")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.decomposition = kernel_size, decomposition
        k = kernel_size
        m, n = ((out_channels * k, in_channels * k) if decomposition == "spatial"
                else (out_channels, in_channels * k * k))
        self._init_factors(m=m, n=n, rank=rank, fan_in=in_channels * k * k, device=device,
                           dtype=dtype)
        self.bias = (nn.Parameter(torch.zeros(out_channels, device=device, dtype=dtype))
                     if bias else None)

    @classmethod
    def from_dense(cls, conv: nn.Conv2d, *, decomposition: str = "channel",
                   rank: int | None = None) -> LowRankConv2d:
        """Initialise from the SVD of the dense kernel's matrix view (exact at full rank)."""
        c_out, c_in, kh, kw_ = conv.weight.shape
        if kh != kw_ or conv.stride != (1, 1) or conv.groups != 1 or conv.dilation != (1, 1) \
                or conv.padding != (kh // 2, kh // 2):
            raise SpecError("conv", f"got {conv}; from_dense needs a square odd kernel, stride 1, "
                            "groups 1, dilation 1 and 'same' padding k // 2")
        w = conv.weight.detach()
        new = cls(c_in, c_out, kh, decomposition=decomposition, rank=rank,
                  bias=conv.bias is not None, device=w.device, dtype=w.dtype)
        if decomposition == "spatial":
            mat = w.permute(0, 3, 1, 2).reshape(c_out * kh, c_in * kh)  # (C_out*k_x, C_in*k_y)
        else:
            mat = w.reshape(c_out, c_in * kh * kh)  # (C_out, C_in*k*k)
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)  # (m, q), (q,), (q, n)
        r = new.rank
        new._set_factors(u[:, :r], s[:r], vh[:r].t())
        if conv.bias is not None and new.bias is not None:
            new.bias = nn.Parameter(conv.bias.detach().clone())
        return new

    def _kernels(self) -> tuple[Tensor, Tensor]:
        """(first, second) convolution kernels, s folded into the first."""
        r, k = self.rank, self.kernel_size
        vt = (self.V * self.s).t()  # (r, n)
        if self.decomposition == "spatial":
            first = vt.reshape(r, self.in_channels, k, 1)  # (r, C_in, k_y, 1)
            second = self.U.view(self.out_channels, k, r).permute(0, 2, 1).unsqueeze(2)
            return first, second  # second: (C_out, r, 1, k_x)
        first = vt.reshape(r, self.in_channels, k, k)  # (r, C_in, k, k)
        return first, self.U.view(self.out_channels, r, 1, 1)  # (C_out, r, 1, 1)

    def _paddings(self) -> tuple[tuple[int, int], tuple[int, int]]:
        p = self.kernel_size // 2
        return ((p, 0), (0, p)) if self.decomposition == "spatial" else ((p, p), (0, 0))

    def forward(self, x: Tensor) -> Tensor:
        first, second = self._kernels()
        pad1, pad2 = self._paddings()
        z = F.conv2d(x, first, padding=pad1)  # (N, r, H, W)
        return F.conv2d(z, second, self.bias, padding=pad2)  # (N, C_out, H, W)

    def dense_weight(self) -> Tensor:
        """The equivalent k x k kernel (C_out, C_in, k, k) rebuilt from the factors."""
        k, c_in, c_out = self.kernel_size, self.in_channels, self.out_channels
        mat = self.matrix()  # (m, n)
        if self.decomposition == "spatial":
            return mat.view(c_out, k, c_in, k).permute(0, 2, 3, 1)  # (C_out, C_in, k_y, k_x)
        return mat.view(c_out, c_in, k, k)

    @torch.no_grad()
    def to_compact(self) -> nn.Sequential:
        """Two plain nn.Conv2d with exactly r*(m + n) weights (+ C_out bias)."""
        first_w, second_w = self._kernels()
        pad1, pad2 = self._paddings()
        device, dtype = self.U.device, self.U.dtype
        k1 = (first_w.shape[2], first_w.shape[3])
        k2 = (second_w.shape[2], second_w.shape[3])
        first = nn.Conv2d(self.in_channels, self.rank, k1, padding=pad1, bias=False,
                          device=device, dtype=dtype)
        second = nn.Conv2d(self.rank, self.out_channels, k2, padding=pad2,
                           bias=self.bias is not None, device=device, dtype=dtype)
        first.weight.copy_(first_w)
        second.weight.copy_(second_w)
        if self.bias is not None and second.bias is not None:
            second.bias.copy_(self.bias)
        return nn.Sequential(first, second)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"decomposition={self.decomposition}, rank={self.rank}, "
                f"bias={self.bias is not None}")
