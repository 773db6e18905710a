"""The two reshapes every linear-type projection does: flatten the input, shape the output.

A projection inside a built model gets and gives flat (N, features) tensors (models.builder), so
both are no-ops there and put no view node into the autograd graph; a projection used alone keeps
its planned (N, C, H, W) output.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["flat_samples", "shaped_output"]


def flat_samples(x: Tensor) -> Tensor:
    """(N, ...) -> (N, features); a 2-D input is returned as it is."""
    return x if x.dim() == 2 else x.reshape(x.shape[0], -1)


def shaped_output(y: Tensor, out_shape: tuple[int, ...]) -> Tensor:
    """(N, features) -> (N, *out_shape); a flat ``out_shape`` returns y as it is."""
    return y if len(out_shape) == 1 else y.view(y.shape[0], *out_shape)
