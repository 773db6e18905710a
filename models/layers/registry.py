"""The one factory table of layer kinds: name -> how to build a module from its plan.

Adding a kind here (and its name in models.spec) is all it takes: the contract tests in
tests/models are generated from this table, with the ``examples`` each entry lists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from models.errors import SpecError
from models.layers.bilinear import BilinearProjection
from models.layers.full import FullProjection
from models.layers.lowrank_conv import LowRankConv2d
from models.layers.lowrank_linear import LowRankLinear
from models.plan import ConvPlan, LayerPlan, ProjectionPlan

__all__ = ["CONV_LAYERS", "PROJECTION_LAYERS", "LayerKind", "make_conv", "make_layer",
           "make_projection"]

Device = torch.device | str | None


@dataclass(frozen=True)
class LayerKind:
    """A buildable layer kind. ``examples``: spec options the contract tests build it with."""

    name: str
    build: Callable[..., nn.Module]
    examples: tuple[Mapping[str, Any], ...] = field(default=({},))


def _full_projection(plan: ProjectionPlan, *, out_shape: tuple[int, ...], device: Device,
                     dtype: torch.dtype | None) -> nn.Module:
    return FullProjection(plan.n, plan.m, out_shape=out_shape, device=device, dtype=dtype)


def _bilinear_projection(plan: ProjectionPlan, *, out_shape: tuple[int, ...], device: Device,
                         dtype: torch.dtype | None) -> nn.Module:
    return BilinearProjection(plan.in_shape[0], plan.out_shape[0], in_grid=plan.in_grid,
                              out_grid=plan.out_grid, out_shape=out_shape, device=device,
                              dtype=dtype)


def _lowrank_projection(plan: ProjectionPlan, *, out_shape: tuple[int, ...], device: Device,
                        dtype: torch.dtype | None) -> nn.Module:
    return LowRankLinear(plan.n, plan.m, rank=plan.rank, out_shape=out_shape, device=device,
                         dtype=dtype)


def _full_conv(plan: ConvPlan, *, device: Device, dtype: torch.dtype | None) -> nn.Module:
    k = plan.spec.kernel_size
    return nn.Conv2d(plan.in_shape[0], plan.conv_shape[0], k, padding=k // 2, device=device,
                     dtype=dtype)


def _lowrank_conv(plan: ConvPlan, *, device: Device, dtype: torch.dtype | None) -> nn.Module:
    return LowRankConv2d(plan.in_shape[0], plan.conv_shape[0], plan.spec.kernel_size,
                         decomposition=plan.spec.decomposition, rank=plan.rank, device=device,
                         dtype=dtype)


PROJECTION_LAYERS: dict[str, LayerKind] = {
    "full": LayerKind("full", _full_projection),
    "bilinear": LayerKind("bilinear", _bilinear_projection),
    "lowrank": LayerKind("lowrank", _lowrank_projection, ({}, {"rank": 2})),
}

CONV_LAYERS: dict[str, LayerKind] = {
    "full": LayerKind("full", _full_conv),
    "lowrank": LayerKind("lowrank", _lowrank_conv, (
        {"decomposition": "channel"}, {"decomposition": "spatial"},
        {"decomposition": "spatial", "rank": 2},
    )),
}


def _lookup(table: Mapping[str, LayerKind], name: str, field_name: str) -> LayerKind:
    try:
        return table[name]
    except KeyError:
        raise SpecError(field_name, f"unknown layer kind {name!r}; valid names: "
                        f"{', '.join(sorted(table))}") from None


def make_projection(plan: ProjectionPlan, *, device: Device = None,
                    dtype: torch.dtype | None = None, flat: bool = False) -> nn.Module:
    """Build the projection module a plan describes. Its output is (N, *plan.out_shape), or
    (N, plan.m) with ``flat`` (what a following projection or the logits want: no reshape)."""
    kind = _lookup(PROJECTION_LAYERS, plan.kind, f"{plan.path}.kind")
    return kind.build(plan, out_shape=(plan.m,) if flat else plan.out_shape, device=device,
                      dtype=dtype)


def make_conv(plan: ConvPlan, *, device: Device = None, dtype: torch.dtype | None = None
              ) -> nn.Module:
    """Build the convolution module a plan describes."""
    kind = _lookup(CONV_LAYERS, plan.kind, f"{plan.path}.kind")
    return kind.build(plan, device=device, dtype=dtype)


def make_layer(plan: LayerPlan, *, device: Device = None, dtype: torch.dtype | None = None
               ) -> nn.Module:
    """Build any planned layer."""
    if isinstance(plan, ConvPlan):
        return make_conv(plan, device=device, dtype=dtype)
    return make_projection(plan, device=device, dtype=dtype)
