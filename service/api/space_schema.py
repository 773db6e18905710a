"""The search space's shape as pydantic models: what OpenAPI and generated clients show.

They DOCUMENT the JSON that ``search.space.parse_space`` validates; they validate nothing
themselves (``JobCreate`` hands the raw JSON to ``parse_space``, the one validation, so the API and
the workers never disagree). Every name list and bound below is read from ``search.space`` and
``models.spec`` (``LIMITS``, the kind tuples, ``TrainConfig``'s fields), and
tests/service/test_space_schema.py checks each bound against ``parse_space`` (the value at the bound
is accepted, the next one refused), so this page cannot drift from the validator.

What a JSON schema cannot say is left to ``parse_space`` (422 invalid-search-space naming the
path): choices must not repeat, a cnn needs ``convs`` and an mlp has none, at most as many
``layers`` overrides as the largest depth, kernel sizes are odd, every choice must build on the
dataset's shape, and the largest architecture must fit the size limits.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from models.spec import BACKBONES, CONV_KINDS, DECOMPOSITIONS, PROJECTION_KINDS
from search.space import DEFAULT_SPACE, LIMITS
from search.training.config import MAX_SEED, OPTIMIZERS, SCHEDULES, SPARSITY_KINDS, TrainConfig

__all__ = ["MAX_COUNT", "SpaceSchema", "TrainSchema"]

MAX_COUNT = 2**31 - 1  # search.training.config's bound on epochs, batch size, fine-tune epochs
_DEFAULT_TRAIN = TrainConfig()

Kind = Literal[PROJECTION_KINDS]  # type: ignore[valid-type]
ConvKind = Literal[CONV_KINDS]  # type: ignore[valid-type]
Decomposition = Literal[DECOMPOSITIONS]  # type: ignore[valid-type]
Multiplier = Annotated[float, Field(gt=0, le=LIMITS.max_multiplier)]
Threshold = Annotated[float, Field(gt=0, le=0.5)]
Depth = Annotated[int, Field(ge=0, le=LIMITS.max_depth)]
KernelSize = Literal[tuple(range(1, LIMITS.max_kernel_size + 1, 2))]  # type: ignore[valid-type]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
NonNegative = Annotated[float, Field(ge=0)]
Absent = SkipJsonSchema[None]  # a field may be left out, never sent as null
_UNIQUE = {"uniqueItems": True}
Kinds = Annotated[
    list[Kind], Field(min_length=1, max_length=LIMITS.max_choices, json_schema_extra=_UNIQUE)
]
ConvKinds = Annotated[
    list[ConvKind], Field(min_length=1, max_length=LIMITS.max_choices, json_schema_extra=_UNIQUE)
]
Multipliers = Annotated[
    list[Multiplier], Field(min_length=1, max_length=LIMITS.max_choices, json_schema_extra=_UNIQUE)
]
Thresholds = Annotated[
    list[Threshold], Field(min_length=1, max_length=LIMITS.max_choices, json_schema_extra=_UNIQUE)
]
Decompositions = Annotated[
    list[Decomposition],
    Field(min_length=1, max_length=LIMITS.max_choices, json_schema_extra=_UNIQUE),
]

Depths = Annotated[
    list[Depth], Field(min_length=1, max_length=LIMITS.max_choices, json_schema_extra=_UNIQUE)
]


def _with_example(schema: dict[str, Any]) -> None:
    schema["examples"] = [DEFAULT_SPACE]
    _no_null_defaults(schema)


def _no_null_defaults(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)


class LayerOverrideSchema(_Strict):
    """Per-layer replacement of the space-wide choices (by index); absent or null: the
    space's."""

    kinds: Kinds | None = Field(None, description="Kinds this layer may take.")
    multipliers: Multipliers | None = Field(None, description="Channel multipliers of this layer.")


class LowRankSchema(_Strict):
    """Options of low-rank (SVD-trained) layers."""

    energy_thresholds: Thresholds | Absent = Field(
        None, description="Singular-value energy pruned away (0.01 keeps 99 %); default [0.01]."
    )
    decompositions: Decompositions | Absent = Field(
        None, description="How a low-rank convolution is split; default [channel]."
    )


class ConvSchema(_Strict):
    """One convolution of a cnn backbone."""

    kinds: ConvKinds | Absent = Field(
        None, description="Kinds this convolution may take; default [full]."
    )
    multipliers: Multipliers | Absent = Field(None, description="Channel multipliers; default [1].")
    kernel_size: KernelSize | Absent = Field(  # type: ignore[valid-type]
        default=None, description="Odd; default 3."
    )
    pool: bool | Absent = Field(default=None, description="2x2 max-pool after it; default false.")


class TrainSchema(_Strict):
    """How every trial trains (search.training.TrainConfig); absent fields keep the space's."""

    epochs: Count | Absent = Field(default=None, examples=[12])
    batch_size: Count | Absent = Field(default=None, examples=[64])
    lr: Annotated[float, Field(gt=0)] | Absent = Field(default=None, examples=[_DEFAULT_TRAIN.lr])
    optimizer: Literal[OPTIMIZERS] | Absent = None  # type: ignore[valid-type]
    schedule: Literal[SCHEDULES] | Absent = None  # type: ignore[valid-type]
    weight_decay: NonNegative | Absent = None
    ortho_coef: NonNegative | Absent = None
    sparsity: Literal[SPARSITY_KINDS] | Absent = None  # type: ignore[valid-type]
    sparsity_coef: NonNegative | Absent = None
    finetune_epochs: Annotated[int, Field(ge=0, le=MAX_COUNT)] | Absent = None
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | Absent = None


class SpaceSchema(_Strict):
    """A search space (search.space): what each layer may be. Absent fields take the default
    space's values."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_with_example)

    backbone: Literal[BACKBONES] | Absent = None  # type: ignore[valid-type]
    depth: Depth | Depths | Absent = Field(
        default=None, description="Hidden layers: one depth, or a list to choose from."
    )
    base_channels: Annotated[int, Field(ge=1, le=LIMITS.max_base_channels)] | Absent = None
    kinds: Kinds | Absent = Field(None, description="Kinds every hidden layer may take.")
    multipliers: Multipliers | Absent = Field(
        None, description="Channel multipliers of hidden layers."
    )
    layers: (
        Annotated[list[LayerOverrideSchema | None], Field(max_length=LIMITS.max_depth)] | Absent
    ) = Field(None, description="Per-layer overrides by index (null or {}: the space's choices).")
    lowrank: LowRankSchema | Absent = None
    classifier_kinds: Kinds | Absent = Field(
        None, description="Kinds of the classifier; default [full]."
    )
    convs: Annotated[list[ConvSchema], Field(max_length=LIMITS.max_convs)] | Absent = None
    train: TrainSchema | Absent = None
