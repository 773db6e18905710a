"""Architecture specs: plain, frozen, JSON round-trippable data. Reading one needs no torch.

A spec describes one network: the input shape (C, H, W), the number of classes, a backbone and, per
layer, its kind, channel multiplier and kind options.

- ``backbone="mlp"``: a stack of projection layers on (C, H, W) feature maps, then a classifier.
- ``backbone="cnn"``: convolutions (full or low-rank), then the same projection stack and
  classifier.

Every hidden layer (projection or convolution) has ``channels(base_channels, multiplier)`` output
channels. A projection layer's output feature map is (channels, *hidden_hw*); ``hidden_hw`` defaults
to the spatial size of the feature map that enters the projection stack.

>>> spec = ArchSpec(input_shape=(1, 8, 8), num_classes=10,
...                 layers=(LayerSpec(kind="bilinear", multiplier=2.0),))
>>> ArchSpec.from_json(spec.to_json()) == spec
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from models.errors import SpecError

__all__ = [
    "BACKBONES",
    "CONV_KINDS",
    "DECOMPOSITIONS",
    "PROJECTION_KINDS",
    "ArchSpec",
    "ConvSpec",
    "LayerSpec",
    "channels",
]

PROJECTION_KINDS = ("full", "bilinear", "lowrank")
CONV_KINDS = ("full", "lowrank")
DECOMPOSITIONS = ("channel", "spatial")
BACKBONES = ("mlp", "cnn")
DEFAULT_ENERGY_THRESHOLD = 0.01


def channels(base_channels: int, multiplier: float) -> int:
    """Output channels of a hidden layer: the one rule, used by builder, costs and search alike."""
    return max(1, round(base_channels * multiplier))


def _check_choice(path: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(path, f"got {value!r}; allowed: {', '.join(allowed)}")


def _check_lowrank_options(path: str, rank: int | None, energy_threshold: float) -> None:
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise SpecError(f"{path}.rank", f"got {rank!r}; must be a positive integer or null")
    if not (isinstance(energy_threshold, int | float) and 0.0 < energy_threshold < 1.0):
        raise SpecError(
            f"{path}.energy_threshold",
            f"got {energy_threshold!r}; must lie strictly between 0 and 1 "
            "(the fraction of singular-value energy pruning may drop, e.g. 0.01)",
        )


def _check_multiplier(path: str, multiplier: float) -> None:
    if (
        isinstance(multiplier, bool)
        or not isinstance(multiplier, int | float)
        or not math.isfinite(multiplier)
        or multiplier <= 0
    ):
        raise SpecError(f"{path}.multiplier", f"got {multiplier!r}; must be a number > 0")


@dataclass(frozen=True)
class LayerSpec:
    """One projection layer (or the classifier).

    kind: ``full`` (nn.Linear), ``bilinear`` (Yu et al.) or ``lowrank`` (SVD-trained, Yang et al.).
    rank: low-rank only; the trained rank, ``None`` for full rank min(m, n).
    energy_threshold: low-rank only; pruning keeps the smallest rank holding >= (1 - e) of sum(s^2).
    The classifier ignores ``multiplier``: its width is the number of classes.
    """

    kind: str = "full"
    multiplier: float = 1.0
    rank: int | None = None
    energy_threshold: float = DEFAULT_ENERGY_THRESHOLD

    def validate(self, path: str) -> None:
        _check_choice(f"{path}.kind", self.kind, PROJECTION_KINDS)
        _check_multiplier(path, self.multiplier)
        _check_lowrank_options(path, self.rank, self.energy_threshold)


@dataclass(frozen=True)
class ConvSpec:
    """One k x k convolution (stride 1, 'same' padding), ReLU, then an optional 2 x 2 max-pool.

    decomposition (low-rank only): ``channel`` (k x k conv to r channels, then 1 x 1) or
    ``spatial`` (k x 1 conv to r channels, then 1 x k).
    """

    kind: str = "full"
    multiplier: float = 1.0
    kernel_size: int = 3
    pool: bool = False
    rank: int | None = None
    energy_threshold: float = DEFAULT_ENERGY_THRESHOLD
    decomposition: str = "channel"

    def validate(self, path: str) -> None:
        _check_choice(f"{path}.kind", self.kind, CONV_KINDS)
        _check_multiplier(path, self.multiplier)
        if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int) or (
            self.kernel_size < 1 or self.kernel_size % 2 == 0
        ):
            raise SpecError(
                f"{path}.kernel_size", f"got {self.kernel_size!r}; must be an odd integer >= 1"
            )
        _check_choice(f"{path}.decomposition", self.decomposition, DECOMPOSITIONS)
        _check_lowrank_options(path, self.rank, self.energy_threshold)


@dataclass(frozen=True)
class ArchSpec:
    """A whole network. ``validate()`` runs on construction; shape chaining is checked by
    ``models.plan.plan_layers`` (called by build_model, count_params and count_macs)."""

    input_shape: tuple[int, int, int]
    num_classes: int
    backbone: str = "mlp"
    base_channels: int = 8
    hidden_hw: tuple[int, int] | None = None
    convs: tuple[ConvSpec, ...] = ()
    layers: tuple[LayerSpec, ...] = ()
    classifier: LayerSpec = field(default_factory=LayerSpec)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        shape = self.input_shape
        if (
            not isinstance(shape, tuple)
            or len(shape) != 3
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
        ):
            raise SpecError(
                "input_shape", f"got {shape!r}; must be three positive integers (C, H, W)"
            )
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or (
            self.num_classes < 2
        ):
            raise SpecError("num_classes", f"got {self.num_classes!r}; must be an integer >= 2")
        _check_choice("backbone", self.backbone, BACKBONES)
        if isinstance(self.base_channels, bool) or not isinstance(self.base_channels, int) or (
            self.base_channels < 1
        ):
            raise SpecError(
                "base_channels", f"got {self.base_channels!r}; must be an integer >= 1"
            )
        if self.hidden_hw is not None and (
            not isinstance(self.hidden_hw, tuple)
            or len(self.hidden_hw) != 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                       for d in self.hidden_hw)
        ):
            raise SpecError(
                "hidden_hw", f"got {self.hidden_hw!r}; must be null or two positive integers (h, w)"
            )
        if self.backbone == "mlp" and self.convs:
            raise SpecError(
                "convs", f"got {len(self.convs)} convolutions; an mlp backbone has none "
                "(use backbone='cnn')"
            )
        if self.backbone == "cnn" and not self.convs:
            raise SpecError("convs", "got none; a cnn backbone needs at least one convolution")
        for i, conv in enumerate(self.convs):
            if not isinstance(conv, ConvSpec):
                raise SpecError(f"convs[{i}]", f"got {type(conv).__name__}; expected ConvSpec")
            conv.validate(f"convs[{i}]")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, LayerSpec):
                raise SpecError(f"layers[{i}]", f"got {type(layer).__name__}; expected LayerSpec")
            layer.validate(f"layers[{i}]")
        if not isinstance(self.classifier, LayerSpec):
            raise SpecError(
                "classifier", f"got {type(self.classifier).__name__}; expected LayerSpec"
            )
        self.classifier.validate("classifier")

    # --- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        if not isinstance(data, Mapping):
            raise SpecError("spec", f"got {type(data).__name__}; expected a JSON object")
        _reject_unknown("spec", data, cls)
        kwargs: dict[str, Any] = dict(data)
        if "input_shape" in kwargs:
            kwargs["input_shape"] = _as_tuple(kwargs["input_shape"])
        if kwargs.get("hidden_hw") is not None:
            kwargs["hidden_hw"] = _as_tuple(kwargs["hidden_hw"])
        kwargs["convs"] = tuple(
            _sub(ConvSpec, f"convs[{i}]", c) for i, c in enumerate(kwargs.get("convs", ()))
        )
        kwargs["layers"] = tuple(
            _sub(LayerSpec, f"layers[{i}]", c) for i, c in enumerate(kwargs.get("layers", ()))
        )
        if "classifier" in kwargs:
            kwargs["classifier"] = _sub(LayerSpec, "classifier", kwargs["classifier"])
        for required in ("input_shape", "num_classes"):
            if required not in kwargs:
                raise SpecError(required, "missing; it is required")
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError("spec", f"not valid JSON ({exc})") from exc
        return cls.from_dict(data)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def _reject_unknown(path: str, data: Mapping[str, Any], cls: type) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(
            f"{path}.{unknown[0]}" if path != "spec" else unknown[0],
            f"unknown field; allowed: {', '.join(sorted(known))}",
        )


def _sub(cls: type[Any], path: str, data: Any) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise SpecError(path, f"got {type(data).__name__}; expected a JSON object")
    _reject_unknown(path, data, cls)
    return cls(**data)
