"""A trained network with its input normalisation inside: raw inputs in, logits out.

``DeployedModel(net, preprocess)`` runs ``net((x - mean) / std)``. The statistics are buffers of
its ``Normalize`` module, not parameters: ``sum(p.numel() for p in model.parameters())`` stays the
network's reported parameter count (``models.count_params(spec)``), and the ONNX export names them
``preprocess.mean`` / ``preprocess.std`` so they can be told apart from the weights.

The normalisation is computed in float32, as training computed it (``search.datasets.split``), so
a raw input gives bit for bit the normalised input the network was trained and tested on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.preprocess import Preprocess
from models.spec import ArchSpec

__all__ = ["DeployedModel", "Normalize"]


class Normalize(nn.Module):
    """(N, C, H, W) raw -> (x - mean) / std per channel, in float32, then cast to ``out_dtype``."""

    mean: Tensor
    std: Tensor

    def __init__(self, preprocess: Preprocess, *, out_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        c = preprocess.input_shape[0]
        self.register_buffer("mean", torch.tensor(preprocess.mean, dtype=torch.float32).view(
            1, c, 1, 1))
        self.register_buffer("std", torch.tensor(preprocess.std, dtype=torch.float32).view(
            1, c, 1, 1))
        self.out_dtype = out_dtype

    def forward(self, x: Tensor) -> Tensor:
        y = (x.to(torch.float32) - self.mean) / self.std  # (N, C, H, W)
        return y.to(self.out_dtype)

    def extra_repr(self) -> str:
        return f"channels={self.mean.shape[1]}, out_dtype={self.out_dtype}"


class DeployedModel(nn.Module):
    """``net`` (a ``models.build_model`` network) behind ``preprocess``; forward takes raw
    (N, *input_shape) inputs. ``net`` alone takes normalised inputs, as in training."""

    def __init__(self, net: nn.Module, preprocess: Preprocess, *, spec: ArchSpec) -> None:
        super().__init__()
        first = next(net.parameters(), None)
        dtype = torch.float32 if first is None else first.dtype
        self.preprocess = Normalize(preprocess, out_dtype=dtype)
        self.net = net
        self.spec = spec
        self.info = preprocess

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.net(self.preprocess(x))  # (N, num_classes)
        return logits
