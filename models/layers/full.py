"""Full (dense) projection: nn.Linear on the flattened feature map, reshaped to the planned output.

Full convolutions are plain ``nn.Conv2d`` (stride 1, 'same' padding); see models.layers.registry.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.errors import SpecError
from models.layers.shapes import flat_samples, shaped_output

__all__ = ["FullProjection"]


class FullProjection(nn.Linear):
    """nn.Linear(in_features, out_features) that flattens (N, C, H, W) -> (N, D) and returns
    (N, *out_shape) (out_shape defaults to (out_features,))."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 out_shape: tuple[int, ...] | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        shape = out_shape if out_shape is not None else (out_features,)
        if math.prod(shape) != out_features:
            raise SpecError("out_shape", f"got {shape}; must hold out_features = {out_features} "
                            "values")
        self.out_shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(flat_samples(x))  # (N, D) -> (N, out_features)
        return shaped_output(y, self.out_shape)  # (N, *out_shape)
