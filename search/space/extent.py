"""How many distinct architectures a space holds, and the fewest parameters they can end with.

- ``count_architectures(space)``: exact, without enumerating (the space is a tree of choices:
  convs x (sum over depths of the layers' choices) x classifier; a low-rank layer multiplies by
  its energy thresholds (and a low-rank conv by its decompositions)).
- ``min_params(spec)``: the fewest parameters ``spec`` can have after training. Exact for full and
  bilinear layers; a low-rank layer is pruned to an unknown rank >= 1, so it counts at rank 1.
- ``smallest_params(space, ...)``: the least ``min_params`` over the space: exact by enumeration
  up to ``ENUMERATION_LIMIT`` architectures, else the smallest multipliers with the cheapest kind
  per layer at every depth.

>>> from search.space.parse import parse_space
>>> space = parse_space({"depth": [1, 2], "kinds": ["full", "bilinear"], "multipliers": [1, 2]})
>>> count_architectures(space)  # depth 1: 4, depth 2: 4 x 4
20
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from math import prod

from models import count_params
from models.spec import ArchSpec, LayerSpec
from search.space.params import Choice, _walk
from search.space.types import SearchSpace

__all__ = ["ENUMERATION_LIMIT", "at_rank_one", "count_architectures", "iter_architectures",
           "min_params", "smallest_params"]

ENUMERATION_LIMIT = 5000


def _kind_options(space: SearchSpace, kind: str, *, conv: bool = False) -> int:
    if kind != "lowrank":
        return 1
    options = len(space.lowrank.energy_thresholds)
    return options * len(space.lowrank.decompositions) if conv else options


def count_architectures(space: SearchSpace) -> int:
    """The number of distinct architectures (distinct trial parameter dicts) of ``space``."""
    convs = prod(
        sum(_kind_options(space, k, conv=True) for k in c.kinds) * len(c.multipliers)
        for c in space.convs
    )
    stacks = 0
    for depth in space.depths:
        stacks += prod(
            sum(_kind_options(space, k) for k in space.layer_choices(i).kinds)
            * len(space.layer_choices(i).multipliers)
            for i in range(depth)
        )
    classifier = sum(_kind_options(space, k) for k in space.classifier_kinds)
    return convs * stacks * classifier


def iter_architectures(
    space: SearchSpace, *, input_shape: tuple[int, int, int], num_classes: int
) -> Iterator[ArchSpec]:
    """Every architecture of ``space``, each once (an odometer over the tree of choices)."""
    path: list[int] = []
    radix: list[int] = []

    def pick(name: str, choices: tuple[Choice, ...]) -> Choice:
        position = len(radix)
        if position == len(path):
            path.append(0)
        radix.append(len(choices))
        return choices[path[position]]

    while True:
        radix.clear()
        spec, _ = _walk(space, pick, input_shape=input_shape, num_classes=num_classes)
        yield spec
        while path and path[-1] + 1 == radix[len(path) - 1]:
            path.pop()
        if not path:
            return
        path[-1] += 1


def _at_rank_one(layer: LayerSpec) -> LayerSpec:
    return replace(layer, rank=1) if layer.kind == "lowrank" else layer


def at_rank_one(spec: ArchSpec) -> ArchSpec:
    """``spec`` with every low-rank layer at rank 1: the cheapest it can be pruned to."""
    return replace(
        spec,
        convs=tuple(replace(c, rank=1) if c.kind == "lowrank" else c for c in spec.convs),
        layers=tuple(_at_rank_one(layer) for layer in spec.layers),
        classifier=_at_rank_one(spec.classifier),
    )


def min_params(spec: ArchSpec) -> int:
    """The fewest parameters ``spec`` can end with (low-rank layers at rank 1)."""
    return count_params(at_rank_one(spec))


def _cheapest(space: SearchSpace, *, input_shape: tuple[int, int, int], num_classes: int
              ) -> int:
    """Smallest multipliers, the cheapest option per conv and layer (shapes do not depend on
    kinds, so per-layer choices are independent once the multipliers are fixed), every depth."""
    best: int | None = None
    base = next(iter_architectures(space, input_shape=input_shape, num_classes=num_classes))
    convs = tuple(replace(c, multiplier=min(space.convs[i].multipliers))
                  for i, c in enumerate(base.convs))
    for depth in space.depths:
        layers = tuple(LayerSpec(kind=space.layer_choices(i).kinds[0],
                                 multiplier=min(space.layer_choices(i).multipliers))
                       for i in range(depth))
        spec = replace(base, convs=convs, layers=layers)
        for i, conv in enumerate(space.convs):
            variants = [replace(spec.convs[i], kind=k, decomposition=d) for k in conv.kinds
                        for d in (space.lowrank.decompositions if k == "lowrank"
                                  else ("channel",))]
            spec = min((replace(spec, convs=(*spec.convs[:i], v, *spec.convs[i + 1:]))
                        for v in variants), key=min_params)
        for i in range(depth):
            options = [replace(spec, layers=(*spec.layers[:i], replace(spec.layers[i], kind=k),
                                             *spec.layers[i + 1:]))
                       for k in space.layer_choices(i).kinds]
            spec = min(options, key=min_params)
        options = [replace(spec, classifier=LayerSpec(kind=k)) for k in space.classifier_kinds]
        count = min(min_params(o) for o in options)
        best = count if best is None else min(best, count)
    assert best is not None  # a space has at least one depth
    return best


def smallest_params(
    space: SearchSpace, *, input_shape: tuple[int, int, int], num_classes: int
) -> int:
    """The fewest parameters any architecture of ``space`` can end with on this input."""
    if count_architectures(space) <= ENUMERATION_LIMIT:
        return min(min_params(s) for s in iter_architectures(
            space, input_shape=input_shape, num_classes=num_classes))
    return _cheapest(space, input_shape=input_shape, num_classes=num_classes)
