"""``TrainConfig``: how one trial is trained. Frozen, validated on construction, JSON round trip.

The defaults suit the built-in ``digits`` set: a default trial trains in a few seconds on a CPU
core, so a 40-trial search finishes in minutes.

>>> config = TrainConfig(epochs=5, optimizer="sgd")
>>> TrainConfig.from_dict(config.to_dict()) == config
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from search.errors import SpaceError

__all__ = ["MAX_SEED", "OPTIMIZERS", "SCHEDULES", "SPARSITY_KINDS", "TrainConfig"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant")
SPARSITY_KINDS = ("l1", "hoyer")

# field -> (minimum, whether the minimum itself is allowed)
_INT_MINIMUM = {"epochs": 1, "batch_size": 1, "finetune_epochs": 0, "seed": 0}
# Seeds feed numpy and torch generators (32 bits); counts stay within a 32-bit signed integer.
# What a service lets one trial cost is its own, lower limit (service.settings.Limits).
MAX_SEED = 2**32 - 1
_INT_MAXIMUM = {"epochs": 2**31 - 1, "batch_size": 2**31 - 1, "finetune_epochs": 2**31 - 1,
                "seed": MAX_SEED}
_FLOAT_MINIMUM = {
    "lr": (0.0, False),
    "weight_decay": (0.0, True),
    "ortho_coef": (0.0, True),
    "sparsity_coef": (0.0, True),
}
_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "sparsity": SPARSITY_KINDS}


@dataclass(frozen=True)
class TrainConfig:
    """Training of one trial.

    epochs: passes over the training part before pruning; batch_size: samples per step;
    lr: peak learning rate; optimizer: adam | adamw | sgd (momentum 0.9, Nesterov);
    schedule: cosine (per step, to 0 at the end of each phase) | constant;
    weight_decay: the optimizer's weight decay (decoupled for adamw);
    ortho_coef: weight of the orthogonality loss of SVD-trained (low-rank) layers;
    sparsity, sparsity_coef: the singular-value sparsity regulariser (l1 | hoyer) and its weight;
    finetune_epochs: epochs after pruning, without the sparsity term, at lr / 10;
    seed: shuffling order (with the model's initial weights, fixes the result on CPU).
    """

    epochs: int = 16
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    schedule: str = "cosine"
    weight_decay: float = 0.0
    ortho_coef: float = 1.0
    sparsity: str = "hoyer"
    # Hoyer is scale-free, so its weight is about the spectrum's shape, not its size. On digits
    # (64 -> 1024 low-rank layer, 12 + 3 epochs, energy threshold 0.05) 3e-3 kept rank 59/64
    # (56/64 at width x0.25), 0.3 kept 52/64 (41/64) for 0.4-0.7 points of validation accuracy,
    # 3.0 kept 43/64 (34/64) for 1.5-2.6 points; 0.3 is the middle of that trade-off (the search
    # explores the rest through the energy thresholds).
    sparsity_coef: float = 0.3
    finetune_epochs: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, *, path: str = "") -> None:
        """Raise SpaceError naming ``path + field``, the value and what is allowed."""
        for name, minimum in _INT_MINIMUM.items():
            value = getattr(self, name)
            maximum = _INT_MAXIMUM[name]
            if isinstance(value, bool) or not isinstance(value, int) or not (
                minimum <= value <= maximum
            ):
                raise SpaceError(
                    f"{path}{name}", f"got {value!r}; must be an integer in [{minimum}, {maximum}]"
                )
        for name, (low, inclusive) in _FLOAT_MINIMUM.items():
            value = getattr(self, name)
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and (value >= low if inclusive else value > low)
            )
            if not ok:
                relation = ">=" if inclusive else ">"
                raise SpaceError(
                    f"{path}{name}", f"got {value!r}; must be a number {relation} {low}"
                )
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise SpaceError(f"{path}{name}", f"got {value!r}", allowed)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``from_dict(to_dict())`` gives back an equal config."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: str = "") -> TrainConfig:
        """Build from a JSON object; missing fields take their defaults.

        ``path`` prefixes the field in errors (e.g. ``"train."`` inside a search config).
        """
        if not isinstance(data, Mapping):
            raise SpaceError(path.rstrip(".") or "train", f"got {type(data).__name__}; "
                             "expected a JSON object")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise SpaceError(f"{path}{key}", "unknown field", known)
        try:
            return cls(**dict(data))
        except SpaceError as exc:
            raise SpaceError(f"{path}{exc.path}", exc.detail, exc.allowed) from None
