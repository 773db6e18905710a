"""Model-level SVD training (Yang et al.): regularisers over all low-rank layers, and pruning.

>>> import torch
>>> from models import build_model
>>> from models.spec import ArchSpec, LayerSpec
>>> spec = ArchSpec(input_shape=(1, 4, 4), num_classes=3, base_channels=2,
...                 layers=(LayerSpec(kind="lowrank", energy_threshold=0.5),))
>>> model = build_model(spec)
>>> has_lowrank(model), float(orthogonality_loss(model).detach()) < 1e-10
(True, True)
>>> pruned = prune_model(model, spec)
>>> pruned.layers[0].rank < 16
True
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from models.errors import SpecError
from models.layers.svd import SVDFactors
from models.spec import ArchSpec

__all__ = ["has_lowrank", "orthogonality_loss", "prune_model", "singular_values", "sparsity_loss"]


def _factor_layers(model: nn.Module) -> list[SVDFactors]:
    return [m for m in model.modules() if isinstance(m, SVDFactors)]


def _zero(model: nn.Module) -> Tensor:
    p = next(model.parameters(), None)
    if p is None:
        return torch.zeros(())
    return torch.zeros((), device=p.device, dtype=p.dtype)


def has_lowrank(model: nn.Module) -> bool:
    """Whether ``model`` holds at least one SVD-trained layer."""
    return bool(_factor_layers(model))


def singular_values(model: nn.Module) -> list[nn.Parameter]:
    """The ``s`` Parameter of every low-rank layer (an optimizer may treat them apart)."""
    return [layer.s for layer in _factor_layers(model)]


def orthogonality_loss(model: nn.Module) -> Tensor:
    """Sum over low-rank layers of (||U^T U - I||_F^2 + ||V^T V - I||_F^2) / r^2 (0 if none)."""
    total = _zero(model)
    for layer in _factor_layers(model):
        total = total + layer.orthogonality_loss()
    return total


def sparsity_loss(model: nn.Module, kind: str) -> Tensor:
    """Sum over low-rank layers of ||s||_1 (``l1``) or ||s||_1 / ||s||_2 (``hoyer``)."""
    if kind not in ("l1", "hoyer"):
        raise SpecError("sparsity", f"got {kind!r}; allowed: l1, hoyer")
    total = _zero(model)
    for layer in _factor_layers(model):
        total = total + layer.sparsity(kind)
    return total


def prune_model(model: nn.Module, spec: ArchSpec) -> ArchSpec:
    """Prune every low-rank layer in place to its own energy_threshold; return the spec with each
    low-rank layer's ``rank`` set to the kept rank (``build_model(returned)`` loads the state)."""
    named = getattr(model, "named_layers", None)
    if named is None:
        raise SpecError("model", f"got {type(model).__name__}; prune_model needs a model from "
                        "models.build_model")
    convs, layers, classifier = list(spec.convs), list(spec.layers), spec.classifier
    for path, module in named():
        if not isinstance(module, SVDFactors):
            continue
        group, _, rest = path.partition("[")
        if group == "classifier":
            rank = module.prune_(classifier.energy_threshold)
            classifier = dataclasses.replace(classifier, rank=rank)
            continue
        index = int(rest.rstrip("]"))
        if group == "convs":
            rank = module.prune_(convs[index].energy_threshold)
            convs[index] = dataclasses.replace(convs[index], rank=rank)
        else:
            rank = module.prune_(layers[index].energy_threshold)
            layers[index] = dataclasses.replace(layers[index], rank=rank)
    return dataclasses.replace(spec, convs=tuple(convs), layers=tuple(layers),
                               classifier=classifier)
