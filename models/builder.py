"""build_model(spec): the network an ArchSpec describes, built from its plan and the registry."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.layers.registry import make_conv, make_projection
from models.plan import ConvPlan, ProjectionPlan, plan_layers
from models.spec import ArchSpec

__all__ = ["ParetoNet", "build_model"]


class ParetoNet(nn.Module):
    """Convolutions (ReLU, optional 2 x 2 max-pool), hidden projections (ReLU), a classifier.

    forward: (N, C, H, W) float -> (N, num_classes) logits. Parameter names are stable across
    ranks (``convs.0.U``, ``layers.1.weight``, ``classifier.bias``), so a pruned model's
    state_dict loads into ``build_model(pruned_spec)``.
    """

    def __init__(self, spec: ArchSpec, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        plans = plan_layers(spec)
        conv_plans = [p for p in plans if isinstance(p, ConvPlan)]
        proj_plans = [p for p in plans if isinstance(p, ProjectionPlan)]
        self.spec = spec
        self.plans = plans
        self.pools = tuple(p.spec.pool for p in conv_plans)
        self.convs = nn.ModuleList(make_conv(p, device=device, dtype=dtype) for p in conv_plans)
        # Projections pass flat (N, features) tensors on: each one reads its input as the planned
        # (C, H, W) map in row-major order anyway, and skipping the reshapes spares autograd two
        # view nodes per layer.
        self.layers = nn.ModuleList(
            make_projection(p, device=device, dtype=dtype, flat=True) for p in proj_plans[:-1]
        )
        self.classifier = make_projection(proj_plans[-1], device=device, dtype=dtype, flat=True)

    def named_layers(self) -> list[tuple[str, nn.Module]]:
        """(spec path, module) for every planned layer in forward order, e.g. ('convs[0]', ...)."""
        modules = [*self.convs, *self.layers, self.classifier]
        return [(plan.path, module) for plan, module in zip(self.plans, modules, strict=True)]

    def forward(self, x: Tensor) -> Tensor:
        for conv, pool in zip(self.convs, self.pools, strict=True):
            x = F.relu(conv(x))  # (N, C', H, W)
            if pool:
                x = F.max_pool2d(x, 2)  # (N, C', H // 2, W // 2)
        for layer in self.layers:
            x = F.relu(layer(x))  # (N, C' * h * w)
        logits: Tensor = self.classifier(x)  # (N, num_classes)
        return logits


def build_model(spec: ArchSpec, *, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> ParetoNet:
    """The model for ``spec`` (SpecError when shapes do not chain or a rank is too large)."""
    return ParetoNet(spec, device=device, dtype=dtype)
