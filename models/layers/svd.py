"""The SVD-trained factors shared by low-rank layers (Yang et al., CVPR-W 2020, arXiv 2004.09031).

A layer's weight, viewed as an m x n matrix, is kept as W = U diag(s) V^T with U (m, r), s (r,),
V (n, r), trained directly. This module holds the factors and everything that only needs them:
the orthogonality and sparsity regularisers, energy-based rank selection and in-place pruning.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.errors import SpecError

__all__ = ["SVDFactors", "energy_rank", "hoyer", "l1", "orthogonality"]


def orthogonality(u: Tensor, v: Tensor) -> Tensor:
    """(||U^T U - I||_F^2 + ||V^T V - I||_F^2) / r^2 for U (m, r), V (n, r)."""
    r = u.shape[1]
    eye = torch.eye(r, device=u.device, dtype=u.dtype)
    gram_u = u.t() @ u  # (r, r)
    gram_v = v.t() @ v  # (r, r)
    return ((gram_u - eye).square().sum() + (gram_v - eye).square().sum()) / (r * r)


def l1(s: Tensor) -> Tensor:
    """||s||_1."""
    return s.abs().sum()


def hoyer(s: Tensor) -> Tensor:
    """||s||_1 / ||s||_2 (scale invariant; 0 for s = 0)."""
    norm = torch.linalg.vector_norm(s)
    ratio: Tensor = s.abs().sum() / norm.clamp_min(torch.finfo(s.dtype).tiny)
    return ratio


def check_energy_threshold(energy_threshold: float) -> None:
    """SpecError unless 0 < energy_threshold < 1."""
    if not (isinstance(energy_threshold, int | float) and not isinstance(energy_threshold, bool)
            and 0.0 < energy_threshold < 1.0):
        raise SpecError(
            "energy_threshold",
            f"got {energy_threshold!r}; must lie strictly between 0 and 1 (the fraction of "
            "singular-value energy pruning may drop, e.g. 0.01)",
        )


def energy_rank(s: Tensor, energy_threshold: float) -> int:
    """Smallest r whose r largest |s| keep at least (1 - e) of sum(s^2); at least 1."""
    check_energy_threshold(energy_threshold)
    energy = s.detach().double().square().sort(descending=True).values  # (r,)
    total = float(energy.sum())
    if total == 0.0:
        return 1
    kept = energy.cumsum(0)  # (r,)
    short = int((kept < (1.0 - energy_threshold) * total).sum())
    return min(short + 1, s.numel())


class SVDFactors(nn.Module):
    """Parameters U (m, r), s (r,), V (n, r) of an SVD-trained layer, plus regularisers and pruning.

    Subclasses set ``m``, ``n`` and implement ``forward``, ``dense_weight`` and ``to_compact``.
    """

    U: nn.Parameter
    s: nn.Parameter
    V: nn.Parameter

    def _init_factors(self, *, m: int, n: int, rank: int | None, fan_in: int,
                      device: torch.device | str | None, dtype: torch.dtype | None) -> None:
        limit = min(m, n)
        r = limit if rank is None else rank
        if isinstance(r, bool) or not isinstance(r, int) or r < 1 or r > limit:
            raise SpecError("rank", f"rank must be <= min(m, n) = {limit} and >= 1; got "
                            f"rank={rank!r}, m={m}, n={n}")
        self.m, self.n = m, n
        self.U = nn.Parameter(torch.empty(m, r, device=device, dtype=dtype))
        self.s = nn.Parameter(torch.empty(r, device=device, dtype=dtype))
        self.V = nn.Parameter(torch.empty(n, r, device=device, dtype=dtype))
        self._fan_in = fan_in
        self.reset_factors()

    def reset_factors(self) -> None:
        """The SVD of a He-initialised dense weight (normal, Var(W_ij) = 2 / fan_in), truncated to
        rank r: at full rank the layer starts as exactly a He-initialised dense layer, as the paper
        starts from the decomposition of a dense one.

        U and V come out orthonormal (the orthogonality loss starts at 0) and s has the spread
        spectrum of a random matrix. A flat spectrum (every s_j equal) would be a stationary point
        of the Hoyer regulariser ||s||_1 / ||s||_2, where it is largest and its gradient is zero:
        training from there never sparsified s.
        """
        with torch.no_grad():
            w = torch.randn(self.m, self.n, device=self.s.device, dtype=torch.float64)
            w *= math.sqrt(2.0 / self._fan_in)  # (m, n)
            u, s, vh = torch.linalg.svd(w, full_matrices=False)  # (m, k), (k,), (k, n)
            r = self.rank
            self.U.copy_(u[:, :r])
            self.s.copy_(s[:r])
            self.V.copy_(vh[:r].t())

    @property
    def rank(self) -> int:
        return int(self.s.shape[0])

    def _set_factors(self, u: Tensor, s: Tensor, v: Tensor) -> None:
        self.U = nn.Parameter(u.detach().clone().contiguous())
        self.s = nn.Parameter(s.detach().clone().contiguous())
        self.V = nn.Parameter(v.detach().clone().contiguous())

    def matrix(self) -> Tensor:
        """W = U diag(s) V^T, (m, n)."""
        return (self.U * self.s) @ self.V.t()  # (m, r) * (r,) @ (r, n)

    def orthogonality_loss(self) -> Tensor:
        return orthogonality(self.U, self.V)

    def sparsity(self, kind: str) -> Tensor:
        if kind == "l1":
            return l1(self.s)
        if kind == "hoyer":
            return hoyer(self.s)
        raise SpecError("kind", f"got {kind!r}; allowed: l1, hoyer")

    @torch.no_grad()
    def prune_(self, energy_threshold: float) -> int:
        """Keep the smallest rank holding >= (1 - e) of sum(s^2) (columns sorted by |s| first).

        Replaces U, s, V by new (smaller) Parameters: build a new optimizer afterwards.
        Returns the kept rank.
        """
        keep = energy_rank(self.s, energy_threshold)
        order = self.s.abs().argsort(descending=True)[:keep]  # (keep,)
        self._set_factors(self.U[:, order], self.s[order], self.V[:, order])
        return keep
