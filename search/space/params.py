"""Trial parameters <-> architectures: the one place parameter names are made and decoded.

A choice with a single allowed value is not a parameter (it is fixed); every other choice is a
categorical parameter named by its place in the spec:

    depth                                  when several depths are allowed
    convs.{i}.kind / .multiplier / .decomposition / .energy_threshold
    layers.{i}.kind / .multiplier / .energy_threshold
    classifier.kind / .energy_threshold

``decomposition`` and ``energy_threshold`` exist only when that layer is low-rank, so the space is
conditional (Optuna's define-by-run handles that; enqueued parameter dicts follow the same rule).

>>> from search.space.parse import parse_space
>>> space = parse_space({"depth": [1, 2], "kinds": ["full", "bilinear"], "multipliers": [1]})
>>> params = {"depth": 1, "layers.0.kind": "bilinear"}
>>> spec = decode(space, params, input_shape=(1, 8, 8), num_classes=10)
>>> [layer.kind for layer in spec.layers], encode(space, spec) == params
(['bilinear'], True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from models.spec import ArchSpec, ConvSpec, LayerSpec
from search.errors import SpaceError
from search.space.types import SearchSpace

__all__ = ["Choice", "Pick", "decode", "encode", "sample_params"]

Choice = str | int | float
Pick = Callable[[str, tuple[Choice, ...]], Choice]


class _Walk:
    """Walks a space in a fixed order, asking ``pick`` for every choice with several values."""

    def __init__(self, pick: Pick) -> None:
        self._pick = pick
        self.params: dict[str, Choice] = {}

    def choose(self, name: str, choices: tuple[Choice, ...]) -> Any:
        if len(choices) == 1:
            return choices[0]
        value = self._pick(name, choices)
        self.params[name] = value
        return value

    def lowrank_energy(self, space: SearchSpace, prefix: str, kind: str) -> float:
        if kind != "lowrank":
            return LayerSpec().energy_threshold
        return float(self.choose(f"{prefix}.energy_threshold", space.lowrank.energy_thresholds))

    def convs(self, space: SearchSpace) -> tuple[ConvSpec, ...]:
        out = []
        for i, conv in enumerate(space.convs):
            prefix = f"convs.{i}"
            kind = self.choose(f"{prefix}.kind", conv.kinds)
            multiplier = float(self.choose(f"{prefix}.multiplier", conv.multipliers))
            decomposition = "channel"
            if kind == "lowrank":
                decomposition = self.choose(f"{prefix}.decomposition", space.lowrank.decompositions)
            out.append(ConvSpec(
                kind=kind, multiplier=multiplier, kernel_size=conv.kernel_size, pool=conv.pool,
                energy_threshold=self.lowrank_energy(space, prefix, kind),
                decomposition=decomposition,
            ))
        return tuple(out)

    def layers(self, space: SearchSpace) -> tuple[LayerSpec, ...]:
        depth = int(self.choose("depth", space.depths))
        out = []
        for i in range(depth):
            choices = space.layer_choices(i)
            prefix = f"layers.{i}"
            kind = self.choose(f"{prefix}.kind", choices.kinds)
            multiplier = float(self.choose(f"{prefix}.multiplier", choices.multipliers))
            out.append(LayerSpec(kind=kind, multiplier=multiplier,
                                 energy_threshold=self.lowrank_energy(space, prefix, kind)))
        return tuple(out)

    def classifier(self, space: SearchSpace) -> LayerSpec:
        kind = self.choose("classifier.kind", space.classifier_kinds)
        return LayerSpec(kind=kind, energy_threshold=self.lowrank_energy(space, "classifier", kind))


def _walk(
    space: SearchSpace, pick: Pick, *, input_shape: tuple[int, int, int], num_classes: int
) -> tuple[ArchSpec, dict[str, Choice]]:
    walk = _Walk(pick)
    convs = walk.convs(space)
    layers = walk.layers(space)
    classifier = walk.classifier(space)
    spec = ArchSpec(
        input_shape=input_shape, num_classes=num_classes, backbone=space.backbone,
        base_channels=space.base_channels, convs=convs, layers=layers, classifier=classifier,
    )
    return spec, walk.params


def sample_params(space: SearchSpace, suggest: Pick) -> dict[str, Choice]:
    """Ask ``suggest(name, choices)`` (e.g. Optuna's ``trial.suggest_categorical``) for every
    parameter of ``space`` in order; returns the parameter dict ``decode`` takes."""
    walk = _Walk(suggest)
    walk.convs(space)
    walk.layers(space)
    walk.classifier(space)
    return walk.params


def decode(
    space: SearchSpace,
    params: Mapping[str, Any],
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
) -> ArchSpec:
    """The architecture that trial ``params`` stand for in ``space`` (the one decoding function).

    SpaceError names ``params.<name>`` when a parameter is missing, not allowed, or unknown.
    """

    def from_params(name: str, choices: tuple[Choice, ...]) -> Choice:
        if name not in params:
            raise SpaceError(f"params.{name}", "missing", choices)
        value = params[name]
        if isinstance(value, bool) or value not in choices:
            raise SpaceError(f"params.{name}", f"got {value!r}", choices)
        return choices[choices.index(value)]

    spec, used = _walk(space, from_params, input_shape=input_shape, num_classes=num_classes)
    unknown = sorted(set(params) - set(used))
    if unknown:
        raise SpaceError(f"params.{unknown[0]}", "not a parameter of this space (or of this "
                         "depth and these kinds)", sorted(used) or ["none"])
    return spec


def _unpruned(spec: ArchSpec) -> ArchSpec:
    """``spec`` with every trained rank reset to None: the architecture a trial started from."""
    return replace(
        spec,
        convs=tuple(replace(c, rank=None) for c in spec.convs),
        layers=tuple(replace(layer, rank=None) for layer in spec.layers),
        classifier=replace(spec.classifier, rank=None),
    )


def _spec_values(spec: ArchSpec) -> dict[str, Choice]:
    values: dict[str, Choice] = {"depth": len(spec.layers), "classifier.kind":
                                 spec.classifier.kind,
                                 "classifier.energy_threshold": spec.classifier.energy_threshold}
    for i, conv in enumerate(spec.convs):
        values.update({f"convs.{i}.kind": conv.kind, f"convs.{i}.multiplier": conv.multiplier,
                       f"convs.{i}.decomposition": conv.decomposition,
                       f"convs.{i}.energy_threshold": conv.energy_threshold})
    for i, layer in enumerate(spec.layers):
        values.update({f"layers.{i}.kind": layer.kind, f"layers.{i}.multiplier": layer.multiplier,
                       f"layers.{i}.energy_threshold": layer.energy_threshold})
    return values


def encode(space: SearchSpace, spec: ArchSpec) -> dict[str, Choice]:
    """The parameter dict that decodes to ``spec`` (trained ranks ignored), e.g. to enqueue a
    previous front as warm-start trials. SpaceError when ``spec`` lies outside ``space``."""
    values = _spec_values(spec)

    def from_spec(name: str, choices: tuple[Choice, ...]) -> Choice:
        value = values.get(name)
        if value is None or value not in choices:
            raise SpaceError(f"spec.{name}", f"got {value!r}; the architecture lies outside "
                             "this search space", choices)
        return choices[choices.index(value)]

    decoded, params = _walk(space, from_spec, input_shape=spec.input_shape,
                            num_classes=spec.num_classes)
    if decoded != _unpruned(spec):
        raise SpaceError("spec", "the architecture lies outside this search space (its backbone, "
                         "base_channels, kernel sizes or pools differ)")
    return params
