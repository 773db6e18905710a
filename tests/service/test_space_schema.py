"""The documented space schema (service.api.space_schema) against the one validator, parse_space.

For every bound the schema states, the value at the bound is accepted by ``parse_space`` and the
next one is refused at the same path; every enum is exactly what ``parse_space`` accepts. So the
OpenAPI document cannot drift from the validation without this failing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from search.errors import SpaceError
from search.space import parse_space
from service.api.space_schema import SpaceSchema

SCHEMA = SpaceSchema.model_json_schema()
DEFS = SCHEMA["$defs"]
CNN: dict[str, Any] = {"backbone": "cnn"}


def _prop(*path: str) -> dict[str, Any]:
    node: dict[str, Any] = SCHEMA
    for name in path:
        node = node["properties"][name] if "properties" in node else node
        while "$ref" in node or "anyOf" in node:
            if "$ref" in node:
                node = DEFS[node["$ref"].split("/")[-1]]
            else:
                node = next(n for n in node["anyOf"] if n.get("type") != "null")
    return node


def _def(model: str, field: str) -> dict[str, Any]:
    node: dict[str, Any] = DEFS[model]["properties"][field]
    if "anyOf" in node:
        node = next(n for n in node["anyOf"] if n.get("type") != "null")
    return node


def _items(node: dict[str, Any]) -> dict[str, Any]:
    items: dict[str, Any] = node["items"]
    return items


# (schema node, how a value becomes a space, the path parse_space names)
NUMERIC: list[tuple[dict[str, Any], Callable[[Any], dict[str, Any]], str]] = [
    (_prop("base_channels"), lambda v: {"base_channels": v}, "base_channels"),
    (_items(_prop("multipliers")), lambda v: {"multipliers": [v]}, "multipliers[0]"),
    (_items(_def("LayerOverrideSchema", "multipliers")),
     lambda v: {"layers": [{"multipliers": [v]}]}, "layers[0].multipliers[0]"),
    (_items(_prop("lowrank", "energy_thresholds")),
     lambda v: {"lowrank": {"energy_thresholds": [v]}}, "lowrank.energy_thresholds[0]"),
    (_items(_def("ConvSchema", "multipliers")),
     lambda v: {**CNN, "convs": [{"multipliers": [v]}]}, "convs[0].multipliers[0]"),
    *[
        (_prop("train", name), (lambda n: lambda v: {"train": {n: v}})(name), f"train.{name}")
        for name in ("epochs", "batch_size", "lr", "weight_decay", "ortho_coef",
                     "sparsity_coef", "finetune_epochs", "seed")
    ],
]


def _refused(space: dict[str, Any], path: str) -> None:
    with pytest.raises(SpaceError) as info:
        parse_space(space)
    assert info.value.path == path


@pytest.mark.parametrize(("node", "make", "path"), NUMERIC, ids=[case[2] for case in NUMERIC])
def test_numeric_bounds_match_parse_space(
    node: dict[str, Any], make: Callable[[Any], dict[str, Any]], path: str
) -> None:
    integer = node["type"] == "integer"
    step = 1 if integer else 1e-9
    assert any(k in node for k in ("minimum", "exclusiveMinimum")), node
    if "minimum" in node:
        parse_space(make(node["minimum"]))
        _refused(make(node["minimum"] - step), path)
    else:
        parse_space(make(node["exclusiveMinimum"] + (1 if integer else 1e-6)))
        _refused(make(node["exclusiveMinimum"]), path)
    if "maximum" in node:
        parse_space(make(node["maximum"]))
        _refused(make(node["maximum"] + (1 if integer else 1e-6)), path)
    if integer:
        _refused(make(1.5), path)


def test_depth_bounds() -> None:
    single = _prop("depth")
    low, high = single["minimum"], single["maximum"]
    assert parse_space({"depth": high}).depths == (high,)
    assert parse_space({"depth": [low, high]}).depths == (low, high)
    _refused({"depth": high + 1}, "depth")
    _refused({"depth": [low - 1]}, "depth[0]")


@pytest.mark.parametrize(
    ("node", "make", "path"),
    [
        (_prop("backbone"), lambda v: {"backbone": v, "convs": [{}]} if v == "cnn"
         else {"backbone": v}, "backbone"),
        (_items(_prop("kinds")), lambda v: {"kinds": [v]}, "kinds[0]"),
        (_items(_prop("classifier_kinds")), lambda v: {"classifier_kinds": [v]},
         "classifier_kinds[0]"),
        (_items(_prop("lowrank", "decompositions")),
         lambda v: {"lowrank": {"decompositions": [v]}}, "lowrank.decompositions[0]"),
        (_items(_def("ConvSchema", "kinds")),
         lambda v: {**CNN, "convs": [{"kinds": [v]}]}, "convs[0].kinds[0]"),
        (_def("ConvSchema", "kernel_size"),
         lambda v: {**CNN, "convs": [{"kernel_size": v}]}, "convs[0].kernel_size"),
        *[
            (_prop("train", name), (lambda n: lambda v: {"train": {n: v}})(name),
             f"train.{name}")
            for name in ("optimizer", "schedule", "sparsity")
        ],
    ],
)
def test_enums_match_parse_space(
    node: dict[str, Any], make: Callable[[Any], dict[str, Any]], path: str
) -> None:
    for value in node["enum"]:
        parse_space(make(value))
    outside = 2 if node["type"] == "integer" else "not-a-choice"
    _refused(make(outside), path)


@pytest.mark.parametrize(
    ("field", "make", "path"),
    [
        ("multipliers", lambda n: {"multipliers": [0.25 * (i + 1) for i in range(n)]},
         "multipliers"),
        ("layers", lambda n: {"depth": 8, "layers": [{}] * n}, "layers"),
        ("convs", lambda n: {**CNN, "convs": [{}] * n}, "convs"),
    ],
)
def test_list_lengths_match_parse_space(
    field: str, make: Callable[[int], dict[str, Any]], path: str
) -> None:
    node = _prop(field)
    parse_space(make(node["maxItems"]))
    _refused(make(node["maxItems"] + 1), path)
    if node.get("minItems"):
        _refused(make(node["minItems"] - 1), path)


def test_unknown_fields_are_refused_by_both() -> None:
    assert SCHEMA["additionalProperties"] is False
    assert set(SCHEMA["properties"]) == set(parse_space({}).to_dict())
    _refused({"depthh": 2}, "depthh")
