"""How large a space's architectures get on a dataset: the largest one, and the size limit.

A layer's output shape does not depend on its kind (models.plan), so parameter counts add up layer
by layer: the largest architecture takes the deepest depth, the largest multipliers, and for each
layer the kind (and low-rank option) that costs most there, low-rank layers at full rank (before
pruning). Its count is the reference for the hypervolume when no ``max_params`` is set.

``check_space`` also builds the plan of every single-layer variation, so a kind that cannot work on
this dataset's shapes (e.g. a bilinear layer on a prime-sized flat input) fails before any trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from models import count_macs, count_params
from models.errors import SpecError
from models.spec import ArchSpec, ConvSpec, LayerSpec
from search.errors import SpaceError
from search.space.types import LIMITS, SearchSpace

__all__ = ["check_space", "largest_macs", "largest_spec"]


def _layer_options(
    space: SearchSpace, kinds: tuple[str, ...], multiplier: float
) -> list[LayerSpec]:
    options = []
    for kind in kinds:
        thresholds = space.lowrank.energy_thresholds if kind == "lowrank" else (None,)
        for energy in thresholds:
            layer = LayerSpec(kind=kind, multiplier=multiplier)
            options.append(layer if energy is None else replace(layer, energy_threshold=energy))
    return options


def _conv_options(space: SearchSpace, index: int) -> list[ConvSpec]:
    conv = space.convs[index]
    options = []
    for kind in conv.kinds:
        for decomposition in space.lowrank.decompositions if kind == "lowrank" else ("channel",):
            options.append(ConvSpec(kind=kind, multiplier=max(conv.multipliers),
                                    kernel_size=conv.kernel_size, pool=conv.pool,
                                    decomposition=decomposition))
    return options


def _params(spec: ArchSpec, cost: Callable[[ArchSpec], int] = count_params) -> int:
    try:
        return int(cost(spec))
    except SpecError as exc:
        raise SpaceError(
            f"space ({exc.field})",
            f"{exc.detail} [this choice of the space cannot be built on input "
            f"{spec.input_shape} with {spec.num_classes} classes; remove it from the space]",
        ) from None


def largest_spec(
    space: SearchSpace,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    cost: Callable[[ArchSpec], int] = count_params,
) -> ArchSpec:
    """The architecture of ``space`` with the most parameters (or most of another additive
    ``cost``, e.g. ``models.count_macs``) on this input (see the module doc)."""

    def size(candidate: ArchSpec) -> int:
        return _params(candidate, cost)

    depth = max(space.depths)
    spec = ArchSpec(
        input_shape=input_shape, num_classes=num_classes, backbone=space.backbone,
        base_channels=space.base_channels,
        convs=tuple(_conv_options(space, i)[0] for i in range(len(space.convs))),
        layers=tuple(
            _layer_options(space, space.layer_choices(i).kinds,
                           max(space.layer_choices(i).multipliers))[0]
            for i in range(depth)
        ),
        classifier=_layer_options(space, space.classifier_kinds, 1.0)[0],
    )
    for i in range(len(space.convs)):
        candidates = [replace(spec, convs=(*spec.convs[:i], c, *spec.convs[i + 1:]))
                      for c in _conv_options(space, i)]
        spec = max(candidates, key=size)
    for i in range(depth):
        choices = space.layer_choices(i)
        candidates = [replace(spec, layers=(*spec.layers[:i], layer, *spec.layers[i + 1:]))
                      for layer in _layer_options(space, choices.kinds, max(choices.multipliers))]
        spec = max(candidates, key=size)
    candidates = [replace(spec, classifier=c)
                  for c in _layer_options(space, space.classifier_kinds, 1.0)]
    return max(candidates, key=size)


def check_space(space: SearchSpace, *, input_shape: tuple[int, int, int], num_classes: int) -> int:
    """Parameters of the largest architecture; SpaceError when it exceeds ``LIMITS.max_params``
    or when some allowed choice cannot be built on this input."""
    largest = largest_spec(space, input_shape=input_shape, num_classes=num_classes)
    # Every kind at the smallest multipliers and depths must plan too (shapes differ there).
    for depth in space.depths:
        for i in range(depth):
            choices = space.layer_choices(i)
            for layer in _layer_options(space, choices.kinds, min(choices.multipliers)):
                _params(replace(largest, layers=(*largest.layers[:i], layer,
                                                 *largest.layers[i + 1:depth])))
    params = _params(largest)
    if params > LIMITS.max_params:
        raise SpaceError(
            "space", f"its largest architecture has {params} parameters on input {input_shape}; "
            f"the limit is {LIMITS.max_params} (lower depth, base_channels or multipliers)"
        )
    return params


def largest_macs(space: SearchSpace, *, input_shape: tuple[int, int, int], num_classes: int) -> int:
    """Multiply-accumulates per sample of the space's most expensive architecture (the costliest
    choice at every layer); times the batch size it bounds what one training step asks of a GPU."""
    spec = largest_spec(space, input_shape=input_shape, num_classes=num_classes, cost=count_macs)
    return _params(spec, count_macs)
