"""``parse_space``: JSON (or YAML-parsed) data to a validated ``SearchSpace``; errors by path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.spec import BACKBONES, CONV_KINDS, DECOMPOSITIONS, PROJECTION_KINDS
from search.errors import SpaceError
from search.space.types import (
    LIMITS,
    ConvChoices,
    LayerOverride,
    LowRankChoices,
    SearchSpace,
)
from search.training.config import TrainConfig

__all__ = ["parse_space"]

_TOP_KEYS = (
    "backbone", "depth", "base_channels", "kinds", "multipliers", "layers", "lowrank",
    "classifier_kinds", "convs", "train",
)


def _object(path: str, value: Any, known: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpaceError(path or "space", f"got {type(value).__name__}; expected a JSON object")
    for key in value:
        if key not in known:
            raise SpaceError(f"{path}.{key}" if path else str(key), "unknown field", known)
    return value


def _int(path: str, value: Any, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpaceError(path, f"got {value!r}; must be an integer in [{low}, {high}]")
    return value


def _list(path: str, value: Any) -> Sequence[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise SpaceError(path, f"got {value!r}; expected a non-empty list")
    if len(value) > LIMITS.max_choices:
        raise SpaceError(path, f"got {len(value)} choices; at most {LIMITS.max_choices} allowed")
    try:
        distinct = len(set(value))
    except TypeError:  # a list or an object among the choices
        raise SpaceError(path, f"got {list(value)!r}; choices are strings or numbers") from None
    if distinct != len(value):
        raise SpaceError(path, f"got {list(value)!r}; choices must not repeat")
    return value


def _names(path: str, value: Any, allowed: Sequence[str]) -> tuple[str, ...]:
    items = _list(path, value)
    for i, item in enumerate(items):
        if item not in allowed:
            raise SpaceError(f"{path}[{i}]", f"got {item!r}", allowed)
    return tuple(items)


def _numbers(path: str, value: Any, *, low: float, high: float, what: str) -> tuple[float, ...]:
    items = _list(path, value)
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, int | float) or not low < item <= high:
            raise SpaceError(f"{path}[{i}]", f"got {item!r}; {what} must lie in ({low}, {high}]")
    return tuple(float(x) for x in items)


def _multipliers(path: str, value: Any) -> tuple[float, ...]:
    return _numbers(path, value, low=0.0, high=LIMITS.max_multiplier, what="a multiplier")


def _depths(value: Any) -> tuple[int, ...]:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else _list(
        "depth", value
    )
    path = "depth" if len(items) == 1 and not isinstance(value, list) else "depth[{}]"
    return tuple(
        _int(path.format(i), d, low=0, high=LIMITS.max_depth) for i, d in enumerate(items)
    )


def _override(path: str, value: Any) -> LayerOverride:
    data = _object(path, value if value is not None else {}, ("kinds", "multipliers"))
    kinds = data.get("kinds")
    multipliers = data.get("multipliers")
    return LayerOverride(
        kinds=None if kinds is None else _names(f"{path}.kinds", kinds, PROJECTION_KINDS),
        multipliers=None if multipliers is None else _multipliers(f"{path}.multipliers",
                                                                  multipliers),
    )


def _conv(path: str, value: Any) -> ConvChoices:
    data = _object(path, value, ("kinds", "multipliers", "kernel_size", "pool"))
    kernel = _int(f"{path}.kernel_size", data.get("kernel_size", 3), low=1,
                  high=LIMITS.max_kernel_size)
    if kernel % 2 == 0:
        raise SpaceError(f"{path}.kernel_size", f"got {kernel}; must be odd ('same' padding)")
    pool = data.get("pool", False)
    if not isinstance(pool, bool):
        raise SpaceError(f"{path}.pool", f"got {pool!r}; must be true or false")
    return ConvChoices(
        kinds=_names(f"{path}.kinds", data.get("kinds", ["full"]), CONV_KINDS),
        multipliers=_multipliers(f"{path}.multipliers", data.get("multipliers", [1.0])),
        kernel_size=kernel,
        pool=pool,
    )


def _lowrank(value: Any) -> LowRankChoices:
    data = _object("lowrank", value, ("energy_thresholds", "decompositions"))
    defaults = LowRankChoices()
    thresholds = data.get("energy_thresholds", list(defaults.energy_thresholds))
    energy = _numbers("lowrank.energy_thresholds", thresholds, low=0.0, high=0.5,
                      what="an energy threshold")
    return LowRankChoices(
        energy_thresholds=energy,
        decompositions=_names("lowrank.decompositions",
                              data.get("decompositions", list(defaults.decompositions)),
                              DECOMPOSITIONS),
    )


def parse_space(data: Any) -> SearchSpace:
    """Validate a JSON (or YAML-parsed) search space; SpaceError names the field path."""
    if isinstance(data, SearchSpace):
        return data
    d = _object("", data, _TOP_KEYS)
    base = SearchSpace()
    backbone = d.get("backbone", base.backbone)
    if backbone not in BACKBONES:
        raise SpaceError("backbone", f"got {backbone!r}", BACKBONES)
    depths = _depths(d.get("depth", list(base.depths)))
    overrides = d.get("layers", [])
    if not isinstance(overrides, list):
        raise SpaceError("layers", f"got {overrides!r}; expected a list of per-layer overrides")
    if len(overrides) > max(depths):
        raise SpaceError("layers", f"got {len(overrides)} overrides for at most {max(depths)} "
                         "layers (the largest depth); remove the extra entries")
    convs = d.get("convs", [])
    if not isinstance(convs, list) or len(convs) > LIMITS.max_convs:
        raise SpaceError("convs", f"got {convs!r}; expected a list of at most "
                         f"{LIMITS.max_convs} convolutions")
    if backbone == "cnn" and not convs:
        raise SpaceError("convs", "got none; a cnn backbone needs at least one convolution")
    if backbone == "mlp" and convs:
        raise SpaceError("convs", f"got {len(convs)} convolutions; an mlp backbone has none "
                         "(use backbone 'cnn')")
    train = TrainConfig.from_dict(d.get("train", base.train.to_dict()), path="train.")
    return SearchSpace(
        backbone=backbone,
        depths=depths,
        base_channels=_int("base_channels", d.get("base_channels", base.base_channels), low=1,
                           high=LIMITS.max_base_channels),
        kinds=_names("kinds", d.get("kinds", list(base.kinds)), PROJECTION_KINDS),
        multipliers=_multipliers("multipliers", d.get("multipliers", list(base.multipliers))),
        layers=tuple(_override(f"layers[{i}]", o) for i, o in enumerate(overrides)),
        lowrank=_lowrank(d.get("lowrank", {})),
        classifier_kinds=_names("classifier_kinds",
                                d.get("classifier_kinds", list(base.classifier_kinds)),
                                PROJECTION_KINDS),
        convs=tuple(_conv(f"convs[{i}]", c) for i, c in enumerate(convs)),
        train=train,
    )
