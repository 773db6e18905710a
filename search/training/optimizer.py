"""The optimizer of one training phase: torch.optim's own update functions, called lean.

``torch.optim.Adam(fused=True).step()`` spends most of its time on small models in per-call
bookkeeping: step hooks, a profiler range, grad-mode switches, rebuilding the tensor lists from
the param groups and regrouping them by device and dtype; ``zero_grad`` adds another profiler range.
Search trials are mostly small models, so that is a large share of a step: on a digits-sized MLP
(4.8k parameters, batch 64, one CPU thread) ten epochs ran 1.10-1.25x faster when the state
lists are built once and ``torch.optim.adam.adam`` (the public functional form, same fused
kernel) is called directly. The parameters after any number of steps are bit-identical to
torch.optim's (tests/search/test_optimizer.py).

Groups carry ``lr`` (set per step by ``run_epoch``) and ``lr_scale`` (see ``make_optimizer``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.adam import adam
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd

from models.lowrank import singular_values
from search.training.config import TrainConfig

__all__ = ["PhaseOptimizer", "make_optimizer"]

BETAS = (0.9, 0.999)  # torch.optim's defaults, as torch.optim.Adam(W) would use them
EPS = 1e-8
SGD_MOMENTUM = 0.9  # Nesterov


class PhaseOptimizer:
    """Adam, AdamW or SGD (momentum 0.9, Nesterov) over ``param_groups``; torch.optim semantics,
    including that a parameter without a gradient is left alone by ``step``."""

    def __init__(self, param_groups: list[dict[str, Any]], *, kind: str, weight_decay: float,
                 device: torch.device) -> None:
        self.param_groups = param_groups
        self.kind = kind
        self.weight_decay = weight_decay
        self.fused = True if device.type in ("cpu", "cuda") else None
        self._state: list[dict[str, list[Any]]] = []
        for params in (g["params"] for g in param_groups):
            if kind == "sgd":
                # Zero buffers: the first step then sets buf = grad, as torch.optim's lazily
                # created ones do (dampening 0), bit for bit.
                self._state.append({"momentum": [torch.zeros_like(p) for p in params]})
            else:
                self._state.append({
                    "exp_avg": [torch.zeros_like(p, memory_format=torch.preserve_format)
                                for p in params],
                    "exp_avg_sq": [torch.zeros_like(p, memory_format=torch.preserve_format)
                                   for p in params],
                    # float32 step counters on the parameter's device, as the fused kernels want
                    "step": [torch.zeros((), dtype=torch.float32, device=p.device)
                             for p in params],
                })

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients (the next backward allocates them afresh)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for group, state in zip(self.param_groups, self._state, strict=True):
            params = group["params"]
            grads = [p.grad for p in params]
            if any(g is None for g in grads):  # rare: keep only the parameters the loss reached
                kept = [i for i, g in enumerate(grads) if g is not None]
                params, grads = [params[i] for i in kept], [grads[i] for i in kept]
                state = {name: [values[i] for i in kept] for name, values in state.items()}
            if params:
                self._update(group, params, grads, state)  # type: ignore[arg-type]

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor],
                state: dict[str, list[Any]]) -> None:
        lr = float(group["lr"])
        if self.kind == "sgd":
            sgd(params, grads, state["momentum"], fused=self.fused,
                weight_decay=self.weight_decay, momentum=SGD_MOMENTUM, lr=lr, dampening=0.0,
                nesterov=True, maximize=False)
            return
        update = adamw if self.kind == "adamw" else adam
        update(params, grads, state["exp_avg"], state["exp_avg_sq"], [], state["step"],
               fused=self.fused, amsgrad=False, beta1=BETAS[0], beta2=BETAS[1], lr=lr,
               weight_decay=self.weight_decay, eps=EPS, maximize=False)


def make_optimizer(
    model: nn.Module, *, config: TrainConfig, lr: float, device: torch.device
) -> PhaseOptimizer:
    """The configured optimizer over the model's trainable parameters (fused kernels where
    PyTorch has them for the device).

    The singular values ``s`` of each SVD-trained layer get a group of their own whose learning
    rate is scaled by their root mean square (``group["lr_scale"]``, applied by ``run_epoch``):
    Adam moves a parameter by about lr per step whatever its size, and s_j ~ 5 at a He scale, so
    at the plain lr they could move by well under one over a search trial's few hundred steps and
    the sparsity term could not drive any of them towards 0. Scaled, s changes at a relative rate
    like that of U and V (never below the plain lr: the scale is at least 1).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    spectra = {id(s): s for s in singular_values(model) if s.requires_grad}
    groups: list[dict[str, Any]] = [
        {"params": [p for p in trainable if id(p) not in spectra], "lr_scale": 1.0}
    ]
    for s in spectra.values():
        rms = float(s.detach().square().mean().sqrt())
        groups.append({"params": [s], "lr_scale": max(rms, 1.0)})
    groups = [g for g in groups if g["params"]]
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    return PhaseOptimizer(groups, kind=config.optimizer, weight_decay=config.weight_decay,
                          device=device)
