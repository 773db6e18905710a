"""The search space's frozen value types and size limits (parsing: ``search.space.parse``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.spec import PROJECTION_KINDS
from search.training.config import TrainConfig

__all__ = [
    "LIMITS",
    "ConvChoices",
    "LayerChoices",
    "LayerOverride",
    "Limits",
    "LowRankChoices",
    "SearchSpace",
    "default_train",
]


@dataclass(frozen=True)
class Limits:
    """Sizes a job may ask for; anything larger is refused before a trial runs."""

    max_depth: int = 8
    max_convs: int = 6
    max_base_channels: int = 512
    max_multiplier: float = 16.0
    max_kernel_size: int = 7
    max_choices: int = 32
    max_params: int = 100_000_000


LIMITS = Limits()


def default_train() -> TrainConfig:
    """The training budget of the default space: tuned so 40 digits trials take minutes on CPU."""
    return TrainConfig(epochs=12, batch_size=64, lr=3e-3, finetune_epochs=3)


@dataclass(frozen=True)
class LayerChoices:
    """The kinds and channel multipliers one projection layer may take."""

    kinds: tuple[str, ...]
    multipliers: tuple[float, ...]


@dataclass(frozen=True)
class LayerOverride:
    """Per-layer replacements of the space-wide choices; ``None`` keeps the default."""

    kinds: tuple[str, ...] | None = None
    multipliers: tuple[float, ...] | None = None


@dataclass(frozen=True)
class LowRankChoices:
    """Options of low-rank (SVD-trained) layers: pruning energy thresholds, conv decompositions."""

    energy_thresholds: tuple[float, ...] = (0.01,)
    decompositions: tuple[str, ...] = ("channel",)


@dataclass(frozen=True)
class ConvChoices:
    """One convolution of a cnn backbone: allowed kinds and multipliers, fixed kernel and pool."""

    kinds: tuple[str, ...] = ("full",)
    multipliers: tuple[float, ...] = (1.0,)
    kernel_size: int = 3
    pool: bool = False


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space (see the module doc); build it with ``parse_space``."""

    backbone: str = "mlp"
    depths: tuple[int, ...] = (2,)
    base_channels: int = 16
    kinds: tuple[str, ...] = PROJECTION_KINDS
    multipliers: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    layers: tuple[LayerOverride, ...] = ()
    lowrank: LowRankChoices = field(default_factory=LowRankChoices)
    classifier_kinds: tuple[str, ...] = ("full",)
    convs: tuple[ConvChoices, ...] = ()
    train: TrainConfig = field(default_factory=default_train)

    def layer_choices(self, index: int) -> LayerChoices:
        """The choices of projection layer ``index`` (0-based): its override, else the default."""
        override = self.layers[index] if index < len(self.layers) else LayerOverride()
        return LayerChoices(
            kinds=override.kinds if override.kinds is not None else self.kinds,
            multipliers=(
                override.multipliers if override.multipliers is not None else self.multipliers
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON; ``parse_space(space.to_dict()) == space``."""
        return {
            "backbone": self.backbone,
            "depth": list(self.depths),
            "base_channels": self.base_channels,
            "kinds": list(self.kinds),
            "multipliers": list(self.multipliers),
            "layers": [
                {k: list(v) for k, v in (("kinds", o.kinds), ("multipliers", o.multipliers))
                 if v is not None}
                for o in self.layers
            ],
            "lowrank": {
                "energy_thresholds": list(self.lowrank.energy_thresholds),
                "decompositions": list(self.lowrank.decompositions),
            },
            "classifier_kinds": list(self.classifier_kinds),
            "convs": [
                {"kinds": list(c.kinds), "multipliers": list(c.multipliers),
                 "kernel_size": c.kernel_size, "pool": c.pool}
                for c in self.convs
            ],
            "train": self.train.to_dict(),
        }
