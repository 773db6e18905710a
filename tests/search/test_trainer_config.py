"""TrainConfig: defaults, JSON round trip, and errors that name the field."""

from __future__ import annotations

import json

import pytest

from search.errors import SpaceError
from search.training.config import TrainConfig


def test_json_round_trip_keeps_every_field() -> None:
    config = TrainConfig(epochs=3, batch_size=32, lr=0.01, optimizer="sgd", schedule="constant",
                         weight_decay=1e-4, ortho_coef=0.5, sparsity="l1", sparsity_coef=1e-4,
                         finetune_epochs=0, seed=9)
    data = json.loads(json.dumps(config.to_dict()))
    assert data == {"epochs": 3, "batch_size": 32, "lr": 0.01, "optimizer": "sgd",
                    "schedule": "constant", "weight_decay": 1e-4, "ortho_coef": 0.5,
                    "sparsity": "l1", "sparsity_coef": 1e-4, "finetune_epochs": 0, "seed": 9}
    assert TrainConfig.from_dict(data) == config


def test_missing_fields_take_defaults() -> None:
    assert TrainConfig.from_dict({"epochs": 2}) == TrainConfig(epochs=2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"epochs": 0}, "train.epochs: got 0; must be an integer in [1, 2147483647]"),
        ({"batch_size": 8.0},
         "train.batch_size: got 8.0; must be an integer in [1, 2147483647]"),
        ({"finetune_epochs": True},
         "train.finetune_epochs: got True; must be an integer in [0, 2147483647]"),
        ({"lr": 0}, "train.lr: got 0; must be a number > 0.0"),
        ({"lr": float("nan")}, "train.lr: got nan; must be a number > 0.0"),
        ({"weight_decay": -1e-3}, "train.weight_decay: got -0.001; must be a number >= 0.0"),
        ({"optimizer": "rmsprop"}, "train.optimizer: got 'rmsprop'; allowed: adam, adamw, sgd"),
        ({"schedule": "step"}, "train.schedule: got 'step'; allowed: cosine, constant"),
        ({"sparsity": "l0"}, "train.sparsity: got 'l0'; allowed: l1, hoyer"),
        ({"momentum": 0.9}, "train.momentum: unknown field; allowed: epochs, batch_size, lr, "
                            "optimizer, schedule, weight_decay, ortho_coef, sparsity, "
                            "sparsity_coef, finetune_epochs, seed"),
    ],
)
def test_errors_name_the_field_the_value_and_the_fix(data: dict[str, object], message: str) -> None:
    with pytest.raises(SpaceError) as info:
        TrainConfig.from_dict(data, path="train.")
    assert str(info.value) == message
    assert info.value.path == message.split(":")[0]


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(SpaceError,
                       match=r"^seed: got -1; must be an integer in \[0, 4294967295\]$"):
        TrainConfig(seed=-1)
