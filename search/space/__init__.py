"""The search space as data: what each layer may be, validated once, stored with the job as JSON.

A space is a JSON object (``parse_space`` also takes the parsed form of a YAML file)::

    {"backbone": "mlp", "depth": [1, 2], "base_channels": 16,
     "kinds": ["full", "bilinear", "lowrank"], "multipliers": [0.25, 0.5, 1, 2],
     "layers": [{"kinds": ["bilinear"]}],          # optional per-layer overrides, by index
     "lowrank": {"energy_thresholds": [0.01], "decompositions": ["channel", "spatial"]},
     "classifier_kinds": ["full"],
     "convs": [{"kinds": ["full", "lowrank"], "multipliers": [1, 2], "pool": true}],  # cnn only
     "train": {"epochs": 12}}                        # the TrainConfig every trial uses

This module gathers the pieces: value types (``search.space.types``), parsing
(``search.space.parse``), trial parameters and ``decode`` (``search.space.params``) and sizes
(``search.space.size``).

>>> space = parse_space({"depth": [1, 2], "kinds": ["full", "bilinear"]})
>>> space.depths, space.layer_choices(1).kinds
((1, 2), ('full', 'bilinear'))
>>> parse_space(space.to_dict()) == space
True
"""

from __future__ import annotations

from typing import Any

from search.space.params import Choice, decode, encode, sample_params
from search.space.parse import parse_space
from search.space.size import check_space, largest_macs, largest_spec
from search.space.types import (
    LIMITS,
    ConvChoices,
    LayerChoices,
    LayerOverride,
    LowRankChoices,
    SearchSpace,
    default_train,
)

__all__ = [
    "DEFAULT_SPACE",
    "LIMITS",
    "Choice",
    "ConvChoices",
    "LayerChoices",
    "LayerOverride",
    "LowRankChoices",
    "SearchSpace",
    "check_space",
    "decode",
    "default_space",
    "default_train",
    "encode",
    "largest_macs",
    "largest_spec",
    "parse_space",
    "sample_params",
]


# The space a search without --space (or a job without "space") explores. SVD training of a
# wide-to-wide layer at full rank costs O(width^3) per step (the orthogonality loss): over a minute
# per trial on a CPU at 1024 features. So low-rank is offered on the first layer, whose rank is
# bounded by the 64 input features of digits, and the second layer is full or bilinear.
DEFAULT_SPACE: dict[str, Any] = {
    "backbone": "mlp",
    "depth": 2,
    "base_channels": 16,
    "kinds": ["full", "bilinear", "lowrank"],
    "multipliers": [0.25, 0.5, 1, 2],
    "layers": [{}, {"kinds": ["full", "bilinear"]}],
    "lowrank": {"energy_thresholds": [0.01, 0.05]},
    "classifier_kinds": ["full"],
}


def default_space() -> SearchSpace:
    """``DEFAULT_SPACE``: a depth-2 MLP, 16 base channels, multipliers 0.25 to 2, every kind on
    the first layer, full or bilinear on the second, a full classifier, the default training."""
    return parse_space(DEFAULT_SPACE)
