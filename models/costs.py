"""Exact parameter and multiply-accumulate (MAC) counts from the plan; no torch needed.

MACs are per sample, for the products of the projections and convolutions only: bias, ReLU,
pooling and the low-rank diagonal ``s`` (foldable into U at inference) are free.

>>> from models.spec import ArchSpec, LayerSpec
>>> spec = ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=16,
...                 layers=(LayerSpec(kind="full"),))
>>> count_params(spec), count_macs(spec)  # (64*1024 + 1024) + (1024*10 + 10); 64*1024 + 1024*10
(76810, 75776)
"""

from __future__ import annotations

from models.plan import ConvPlan, LayerPlan, ProjectionPlan, plan_layers
from models.spec import ArchSpec

__all__ = [
    "bilinear_macs",
    "bilinear_order",
    "count_macs",
    "count_params",
    "layer_macs",
    "layer_params",
]


def bilinear_order(*, in_grid: tuple[int, int], out_grid: tuple[int, int]) -> str:
    """The cheaper contraction order of U^T X V for X: d1 x d2, U: d1 x k1, V: d2 x k2.

    ``"right"``: T = X V first (d1*d2*k2 MACs), then U^T T (d1*k1*k2).
    ``"left"``: Z = U^T X first (k1*d1*d2 MACs), then Z V (k1*d2*k2). Ties go right.
    """
    (d1, d2), (k1, k2) = in_grid, out_grid
    right = d1 * k2 * (d2 + k1)
    left = k1 * d2 * (d1 + k2)
    return "right" if right <= left else "left"


def bilinear_macs(*, in_channels: int, out_channels: int, in_grid: tuple[int, int],
                  out_grid: tuple[int, int]) -> int:
    """MACs per sample of a bilinear projection evaluated in its cheaper order."""
    (d1, d2), (k1, k2) = in_grid, out_grid
    per_pair = min(d1 * k2 * (d2 + k1), k1 * d2 * (d1 + k2))
    return in_channels * out_channels * per_pair


def layer_params(plan: LayerPlan) -> int:
    """Trainable parameters of one planned layer (bias included)."""
    if isinstance(plan, ConvPlan):
        c_in, c_out, k = plan.in_shape[0], plan.conv_shape[0], plan.spec.kernel_size
        if plan.rank is None:
            return c_out * c_in * k * k + c_out
        return plan.rank * (plan.m + plan.n) + plan.rank + c_out
    if plan.kind == "full":
        return plan.m * plan.n + plan.m
    if plan.kind == "lowrank":
        assert plan.rank is not None
        return plan.rank * (plan.m + plan.n) + plan.rank + plan.m
    (d1, d2), (k1, k2) = plan.in_grid, plan.out_grid
    c_in, c_out = plan.in_shape[0], plan.out_shape[0]
    return c_in * c_out * (d1 * k1 + d2 * k2) + c_out * k1 * k2


def layer_macs(plan: LayerPlan) -> int:
    """Multiply-accumulates per sample of one planned layer."""
    if isinstance(plan, ConvPlan):
        c_in = plan.in_shape[0]
        c_out, h, w = plan.conv_shape
        k = plan.spec.kernel_size
        if plan.rank is None:
            return h * w * c_out * c_in * k * k
        return h * w * plan.rank * (plan.m + plan.n)
    return _projection_macs(plan)


def _projection_macs(plan: ProjectionPlan) -> int:
    if plan.kind == "full":
        return plan.m * plan.n
    if plan.kind == "lowrank":
        assert plan.rank is not None
        return plan.rank * (plan.m + plan.n)
    return bilinear_macs(in_channels=plan.in_shape[0], out_channels=plan.out_shape[0],
                         in_grid=plan.in_grid, out_grid=plan.out_grid)


def count_params(spec: ArchSpec) -> int:
    """Exact number of trainable parameters of ``build_model(spec)``."""
    return sum(layer_params(p) for p in plan_layers(spec))


def count_macs(spec: ArchSpec) -> int:
    """Exact multiply-accumulates per sample of ``build_model(spec)``'s forward pass."""
    return sum(layer_macs(p) for p in plan_layers(spec))
