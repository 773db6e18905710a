"""Search space: parsing errors by field path, JSON round trip, parameter names, decode/encode."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import yaml

from models import count_params
from models.spec import ArchSpec, LayerSpec
from search.errors import SpaceError
from search.space import (
    LIMITS,
    check_space,
    decode,
    default_space,
    encode,
    largest_spec,
    parse_space,
    sample_params,
)

DIGITS = {"input_shape": (1, 8, 8), "num_classes": 10}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"layers": [{}, {}, {"kinds": ["conv"]}], "depth": 3},
         "layers[2].kinds[0]: got 'conv'; allowed: full, bilinear, lowrank"),
        ({"backbone": "rnn"}, "backbone: got 'rnn'; allowed: mlp, cnn"),
        ({"depth": 9}, "depth: got 9; must be an integer in [0, 8]"),
        ({"depth": [1, 12]}, "depth[1]: got 12; must be an integer in [0, 8]"),
        ({"multipliers": [0.5, 17]},
         "multipliers[1]: got 17; a multiplier must lie in (0.0, 16.0]"),
        ({"multipliers": []}, "multipliers: got []; expected a non-empty list"),
        ({"kinds": ["full", "full"]}, "kinds: got ['full', 'full']; choices must not repeat"),
        ({"kinds": [{"a": 1}]}, "kinds: got [{'a': 1}]; choices are strings or numbers"),
        ({"base_channels": 0}, "base_channels: got 0; must be an integer in [1, 512]"),
        ({"lowrank": {"decompositions": ["diagonal"]}},
         "lowrank.decompositions[0]: got 'diagonal'; allowed: channel, spatial"),
        ({"convs": [{"kinds": ["full"]}]},
         "convs: got 1 convolutions; an mlp backbone has none (use backbone 'cnn')"),
        ({"backbone": "cnn", "convs": [{"kernel_size": 4}]},
         "convs[0].kernel_size: got 4; must be odd ('same' padding)"),
        ({"backbone": "cnn"}, "convs: got none; a cnn backbone needs at least one convolution"),
        ({"train": {"epochs": 0}}, "train.epochs: got 0; must be an integer in [1, 2147483647]"),
        ({"layers": [{}, {}, {}]},
         "layers: got 3 overrides for at most 2 layers (the largest depth); remove the extra "
         "entries"),
        ({"width": 3}, "width: unknown field; allowed: backbone, depth, base_channels, kinds, "
         "multipliers, layers, lowrank, classifier_kinds, convs, train"),
    ],
)
def test_parse_errors_name_the_field_and_the_allowed_values(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpaceError) as info:
        parse_space(data)
    assert str(info.value) == message


def test_round_trip_through_json_and_yaml() -> None:
    data = {
        "backbone": "cnn", "depth": [1, 3], "base_channels": 8, "kinds": ["bilinear", "lowrank"],
        "multipliers": [0.5, 1], "layers": [{"kinds": ["full"]}, None, {"multipliers": [4]}],
        "lowrank": {"energy_thresholds": [0.01, 0.1], "decompositions": ["spatial"]},
        "classifier_kinds": ["full", "lowrank"],
        "convs": [{"kinds": ["full", "lowrank"], "multipliers": [1, 2], "pool": True}],
        "train": {"epochs": 3},
    }
    space = parse_space(data)
    assert parse_space(json.loads(json.dumps(space.to_dict()))) == space
    assert parse_space(yaml.safe_load(yaml.safe_dump(data))) == space
    assert space.layer_choices(0).kinds == ("full",)
    assert space.layer_choices(1).kinds == ("bilinear", "lowrank")
    assert space.layer_choices(2).multipliers == (4.0,)
    assert space.train.epochs == 3


def _all_params(space: Any) -> list[dict[str, Any]]:
    """Brute force: every parameter dict of a small space, branching on each choice in turn."""
    found: list[dict[str, Any]] = []

    def explore(prefix: list[int]) -> None:
        position = 0
        width: int | None = None  # number of choices at the first position past the prefix

        def pick(name: str, choices: tuple[Any, ...]) -> Any:
            nonlocal position, width
            if position < len(prefix):
                value = choices[prefix[position]]
            else:
                width = len(choices) if width is None else width
                value = choices[0]
            position += 1
            return value

        params = sample_params(space, pick)
        if width is None:
            found.append(params)
            return
        for i in range(width):
            explore([*prefix, i])

    explore([])
    return found


def test_parameter_names_are_conditional_and_every_choice_decodes_and_encodes_back() -> None:
    space = parse_space({"depth": [1, 2], "kinds": ["full", "lowrank"], "multipliers": [1, 2],
                         "lowrank": {"energy_thresholds": [0.01, 0.1]}})
    every = _all_params(space)
    # depth 1: 2 kinds (+ 2 thresholds for lowrank) = 3 layer variants x 2 multipliers = 6;
    # depth 2: 6 * 6 = 36.
    assert len(every) == 42
    assert len({json.dumps(p, sort_keys=True) for p in every}) == 42
    assert {"depth": 1, "layers.0.kind": "lowrank", "layers.0.multiplier": 2.0,
            "layers.0.energy_threshold": 0.1} in every
    for params in every:
        spec = decode(space, params, **DIGITS)
        assert len(spec.layers) == params["depth"]
        assert encode(space, spec) == params


def test_fixed_choices_are_not_parameters() -> None:
    space = parse_space({"depth": 2, "kinds": ["bilinear"], "multipliers": [0.5, 1]})
    params = sample_params(space, lambda name, choices: choices[-1])
    assert params == {"layers.0.multiplier": 1.0, "layers.1.multiplier": 1.0}
    spec = decode(space, params, **DIGITS)
    assert [(layer.kind, layer.multiplier) for layer in spec.layers] == [("bilinear", 1.0)] * 2


def test_decode_errors_name_the_parameter() -> None:
    space = parse_space({"depth": [1, 2]})
    with pytest.raises(SpaceError) as info:
        decode(space, {"depth": 3}, **DIGITS)
    assert str(info.value) == "params.depth: got 3; allowed: 1, 2"
    with pytest.raises(SpaceError) as info:
        decode(space, {"depth": 1, "layers.0.kind": "full"}, **DIGITS)
    assert str(info.value) == "params.layers.0.multiplier: missing; allowed: 0.25, 0.5, 1.0, 2.0"
    full = {"depth": 1, "layers.0.kind": "full", "layers.0.multiplier": 1.0}
    with pytest.raises(SpaceError, match=r"^params.layers.1.kind: not a parameter of this space"):
        decode(space, {**full, "layers.1.kind": "full"}, **DIGITS)


def test_encode_refuses_an_architecture_outside_the_space() -> None:
    spec = ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=16,
                    layers=(LayerSpec(kind="full", multiplier=3.0),))
    with pytest.raises(SpaceError) as info:
        encode(default_space(), spec)
    assert str(info.value) == (
        "spec.layers.0.multiplier: got 3.0; the architecture lies outside this search space; "
        "allowed: 0.25, 0.5, 1.0, 2.0"
    )
    other_base = ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=8,
                          layers=(LayerSpec(kind="full"), LayerSpec(kind="bilinear")))
    with pytest.raises(SpaceError, match=r"^spec: the architecture lies outside this search"):
        encode(default_space(), other_base)


def test_largest_spec_is_the_brute_force_maximum() -> None:
    space = parse_space({"depth": [1, 2], "kinds": ["full", "bilinear", "lowrank"],
                         "multipliers": [0.5, 2], "classifier_kinds": ["full", "bilinear"]})
    brute = max(count_params(decode(space, p, **DIGITS)) for p in _all_params(space))
    largest = largest_spec(space, **DIGITS)
    assert count_params(largest) == brute
    assert check_space(space, **DIGITS) == brute


def test_check_space_refuses_absurd_sizes_and_unbuildable_kinds() -> None:
    big = parse_space({"depth": 8, "base_channels": 512, "multipliers": [16]})
    with pytest.raises(SpaceError, match=r"^space: its largest architecture has \d+ parameters"):
        check_space(big, **DIGITS)
    # A bilinear classifier needs no factorisation of 7 outputs, but a bilinear layer fed a flat
    # 7-feature input does: 1 x 7 x 1 cannot be reshaped into a d1 x d2 >= 2 grid.
    prime = parse_space({"depth": 1, "kinds": ["bilinear"], "multipliers": [1]})
    with pytest.raises(SpaceError, match=r"^space \(layers\[0\]\): .*remove it from the space"):
        check_space(prime, input_shape=(1, 1, 7), num_classes=3)
    assert LIMITS.max_depth == 8


def test_sampling_is_uniform_over_the_declared_choices() -> None:
    rng = random.Random(0)
    space = default_space()
    seen = {sample_params(space, lambda n, c: rng.choice(c))["layers.0.kind"] for _ in range(60)}
    assert seen == {"full", "bilinear", "lowrank"}


def test_cnn_space_decodes_convolutions_with_conditional_decomposition() -> None:
    space = parse_space({
        "backbone": "cnn", "depth": 1, "kinds": ["bilinear"], "multipliers": [1],
        "lowrank": {"decompositions": ["channel", "spatial"]},
        "convs": [{"kinds": ["full", "lowrank"], "multipliers": [0.5, 1], "pool": True}],
    })
    every = _all_params(space)
    # conv: full, or lowrank x 2 decompositions = 3 variants, x 2 multipliers
    assert len(every) == 6
    assert {"convs.0.kind": "lowrank", "convs.0.multiplier": 0.5,
            "convs.0.decomposition": "spatial"} in every
    for params in every:
        spec = decode(space, params, **DIGITS)
        (conv,) = spec.convs
        assert (conv.kind, conv.pool, conv.kernel_size) == (params["convs.0.kind"], True, 3)
        assert conv.decomposition == params.get("convs.0.decomposition", "channel")
        assert encode(space, spec) == params
    assert check_space(space, **DIGITS) == max(
        count_params(decode(space, p, **DIGITS)) for p in every
    )


def test_parsing_a_space_imports_no_torch() -> None:
    """search.space reads TrainConfig from search.training, whose torch-using names load lazily."""
    import subprocess
    import sys

    code = (
        "import sys, search.space, search.training; "
        "search.space.parse_space({'depth': 1}); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
