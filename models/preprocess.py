"""What a model expects of its raw inputs: plain, frozen, JSON round-trippable data (no torch).

Training normalises every image with the per-channel mean and standard deviation of the raw
training split; a deployed model must do the same to raw inputs of the dataset's own format.
``Preprocess`` records that (and the input shape and dtype, the class count, the dataset name);
it travels with the trial (the service's ``trials.preprocess_json``) and inside the safetensors
metadata (key ``preprocess``), and ``models.deployed.DeployedModel`` applies it.

>>> p = Preprocess(mean=(8.0,), std=(4.0,), input_shape=(1, 8, 8), num_classes=10,
...                dataset="digits")
>>> Preprocess.from_json(p.to_json()) == p
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from models.errors import SpecError

__all__ = ["INPUT_DTYPES", "Preprocess"]

INPUT_DTYPES = ("float32",)


def _floats(name: str, values: Any, *, positive: bool) -> tuple[float, ...]:
    if not isinstance(values, list | tuple) or not values or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        and (v > 0 or not positive) for v in values
    ):
        need = "positive finite numbers" if positive else "finite numbers"
        raise SpecError(f"preprocess.{name}", f"got {values!r}; must be a list of {need}, one "
                        "per input channel")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Preprocess:
    """Per-channel ``mean`` and ``std`` (C,) of the raw training split; a raw input x of shape
    (N, *input_shape) and dtype ``input_dtype`` enters the network as (x - mean) / std.

    ``dataset`` is the dataset's name (``digits``); ``num_classes`` the width of the logits.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_shape: tuple[int, int, int]
    num_classes: int
    dataset: str
    input_dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _floats("mean", self.mean, positive=False))
        object.__setattr__(self, "std", _floats("std", self.std, positive=True))
        shape = self.input_shape
        if not isinstance(shape, list | tuple) or len(shape) != 3 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
        ):
            raise SpecError("preprocess.input_shape",
                            f"got {shape!r}; must be three positive integers (C, H, W)")
        object.__setattr__(self, "input_shape", tuple(shape))
        if len(self.mean) != shape[0] or len(self.std) != shape[0]:
            raise SpecError("preprocess.mean", f"got {len(self.mean)} means and {len(self.std)} "
                            f"standard deviations for {shape[0]} input channels; give one each "
                            "per channel")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or (
            self.num_classes < 2
        ):
            raise SpecError("preprocess.num_classes",
                            f"got {self.num_classes!r}; must be an integer >= 2")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise SpecError("preprocess.dataset", f"got {self.dataset!r}; must be a name")
        if self.input_dtype not in INPUT_DTYPES:
            raise SpecError("preprocess.input_dtype", f"got {self.input_dtype!r}; allowed: "
                            f"{', '.join(INPUT_DTYPES)}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        data["input_shape"] = list(self.input_shape)
        return data

    def to_json(self) -> str:
        """Compact JSON; floats are written exactly (float32 statistics round-trip bit for bit)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocess:
        if not isinstance(data, Mapping):
            raise SpecError("preprocess", f"got {type(data).__name__}; expected a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"preprocess.{unknown[0]}",
                            f"unknown field; allowed: {', '.join(sorted(known))}")
        missing = sorted(f.name for f in fields(cls) if f.name not in data
                         and f.name != "input_dtype")
        if missing:
            raise SpecError(f"preprocess.{missing[0]}",
                            f"missing; required: {', '.join(missing)}")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> Preprocess:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError("preprocess", f"not valid JSON ({exc})") from exc
        return cls.from_dict(data)
