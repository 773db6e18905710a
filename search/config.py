"""``SearchConfig``: one whole search as data (dataset, space, objectives, budget, sampler, limits).

Frozen and JSON round-trippable; the service stores ``to_dict()`` with the job and every worker
rebuilds the same config with ``parse_config``. The training budget of each trial lives in the
space (``space.train``); ``config.train`` reads it, and a top-level ``"train"`` object in the data
overrides fields of the space's.

>>> config = parse_config({"dataset": "digits", "n_trials": 10, "max_params": 50_000})
>>> config.objectives, config.sampler, config.train.epochs
(('accuracy', 'params'), 'tpe', 12)
>>> parse_config(config.to_dict()) == config
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from search.datasets import FORMATS, Splits
from search.early_stop import DEFAULT_EARLY_STOPPING, EarlyStopping, parse_early_stopping
from search.errors import SpaceError
from search.space import Choice, SearchSpace, decode, default_space, parse_space
from search.training.config import MAX_SEED, TrainConfig

__all__ = ["DIRECTIONS", "KNOWN_SHAPES", "MAX_TRIALS", "OBJECTIVE_SETS", "SAMPLERS",
           "SearchConfig", "parse_config"]

SAMPLERS = ("tpe", "nsga2", "random")
Direction = Literal["maximize", "minimize"]
DIRECTIONS: dict[str, Direction] = {
    "accuracy": "maximize", "params": "minimize", "macs": "minimize",
}
OBJECTIVE_SETS = (("accuracy", "params"), ("accuracy", "params", "macs"))
MAX_TRIALS = 100_000
_KEYS = ("dataset", "space", "objectives", "n_trials", "sampler", "seed", "max_params",
         "warm_start", "input_shape", "num_classes", "train", "early_stopping",
         "skip_duplicates")
# (C, H, W) and classes of the formats whose shape is fixed; others (npz) must be given.
KNOWN_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}


@dataclass(frozen=True)
class SearchConfig:
    """A search: ``n_trials`` trials of ``space`` on ``dataset`` with ``sampler``.

    objectives: ("accuracy", "params") or ("accuracy", "params", "macs") -- validation accuracy
    is maximised, parameters after pruning (and MACs per sample) minimised.
    seed: makes a single-process search reproducible (None: a fresh random search).
    max_params: a constraint (infeasible trials never reach the front), not a penalty.
    warm_start: parameter dicts (``search.space.encode``) run first, e.g. a previous front.
    input_shape, num_classes: the dataset's (C, H, W) and classes; None takes them from
    ``KNOWN_SHAPES`` (an ``npz`` dataset must give them: ``config.with_data(splits)``).
    early_stopping: the Pareto-aware rule (``search.early_stop``).
    skip_duplicates: a proposed architecture already finished is not trained again (it is told
    with the earlier values and recorded as a duplicate); False trains it again (baselines).
    """

    dataset: str = "digits"
    space: SearchSpace = field(default_factory=default_space)
    objectives: tuple[str, ...] = ("accuracy", "params")
    n_trials: int = 40
    sampler: str = "tpe"
    seed: int | None = None
    max_params: int | None = None
    warm_start: tuple[dict[str, Choice], ...] = ()
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    early_stopping: EarlyStopping = DEFAULT_EARLY_STOPPING
    skip_duplicates: bool = True

    def data_shape(self) -> tuple[tuple[int, int, int], int]:
        """(input_shape, num_classes) of the dataset; SpaceError when neither given nor known."""
        if self.input_shape is not None and self.num_classes is not None:
            return self.input_shape, self.num_classes
        if self.dataset in KNOWN_SHAPES:
            return KNOWN_SHAPES[self.dataset]
        raise SpaceError("input_shape", f"missing; dataset {self.dataset!r} has no fixed shape, "
                         "give input_shape and num_classes (SearchConfig.with_data(splits))")

    def with_data(self, splits: Splits) -> SearchConfig:
        """This config with the input shape and classes of the loaded dataset ``splits``."""
        return replace(self, input_shape=splits.input_shape, num_classes=splits.num_classes)

    @property
    def train(self) -> TrainConfig:
        """How each trial trains (the space's training budget)."""
        return self.space.train

    @property
    def directions(self) -> list[Direction]:
        """Optuna study directions, one per objective."""
        return [DIRECTIONS[name] for name in self.objectives]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON; ``parse_config(config.to_dict()) == config``."""
        return {
            "dataset": self.dataset,
            "space": self.space.to_dict(),
            "objectives": list(self.objectives),
            "n_trials": self.n_trials,
            "sampler": self.sampler,
            "seed": self.seed,
            "max_params": self.max_params,
            "warm_start": [dict(p) for p in self.warm_start],
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "num_classes": self.num_classes,
            "early_stopping": self.early_stopping.to_dict(),
            "skip_duplicates": self.skip_duplicates,
        }


def _optional_int(path: str, value: Any, *, low: int, high: int = 2**63 - 1) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpaceError(path, f"got {value!r}; must be null or an integer in [{low}, {high}]")
    return value


def _warm_start(value: Any, space: SearchSpace) -> tuple[dict[str, Choice], ...]:
    if not isinstance(value, list):
        raise SpaceError("warm_start", f"got {value!r}; expected a list of parameter objects")
    out = []
    for i, params in enumerate(value):
        if not isinstance(params, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str | int | float) for k, v in params.items()
        ):
            raise SpaceError(f"warm_start[{i}]", f"got {params!r}; expected an object of "
                             "parameter name -> value (see search.space.encode)")
        try:  # the parameters' validity does not depend on the input shape
            decode(space, params, input_shape=(1, 8, 8), num_classes=10)
        except SpaceError as exc:
            raise SpaceError(f"warm_start[{i}].{exc.path}", exc.detail, exc.allowed) from None
        out.append(dict(params))
    return tuple(out)


def parse_config(data: Any) -> SearchConfig:
    """Validate a JSON search config; SpaceError names the field path (``space.layers[1]...``)."""
    if not isinstance(data, Mapping):
        raise SpaceError("config", f"got {type(data).__name__}; expected a JSON object")
    for key in data:
        if key not in _KEYS:
            raise SpaceError(str(key), "unknown field", _KEYS)
    dataset = data.get("dataset", "digits")
    if dataset not in FORMATS:
        raise SpaceError("dataset", f"got {dataset!r}", FORMATS)
    try:
        space = parse_space(data["space"]) if "space" in data else default_space()
    except SpaceError as exc:
        path = exc.path if exc.path.startswith("space") else f"space.{exc.path}"
        raise SpaceError(path, exc.detail, exc.allowed) from None
    if "train" in data:
        train = data["train"]
        if not isinstance(train, Mapping):
            raise SpaceError("train", f"got {train!r}; expected a JSON object")
        merged = {**space.train.to_dict(), **train}
        space = replace(space, train=TrainConfig.from_dict(merged, path="train."))
    objectives = tuple(data.get("objectives", ("accuracy", "params")))
    if objectives not in OBJECTIVE_SETS:
        raise SpaceError("objectives", f"got {list(objectives)!r}",
                         ["accuracy,params", "accuracy,params,macs"])
    n_trials = data.get("n_trials", 40)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or not (
        1 <= n_trials <= MAX_TRIALS
    ):
        raise SpaceError("n_trials", f"got {n_trials!r}; must be an integer in [1, {MAX_TRIALS}]")
    sampler = data.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise SpaceError("sampler", f"got {sampler!r}", SAMPLERS)
    warm_start = _warm_start(data.get("warm_start", []), space)
    input_shape = data.get("input_shape")
    if input_shape is not None and (
        not isinstance(input_shape, list | tuple) or len(input_shape) != 3
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                   for d in input_shape)
    ):
        raise SpaceError("input_shape", f"got {input_shape!r}; must be null or three positive "
                         "integers (C, H, W)")
    early_stopping = parse_early_stopping(
        data.get("early_stopping", DEFAULT_EARLY_STOPPING.to_dict()), epochs=space.train.epochs)
    skip_duplicates = data.get("skip_duplicates", True)
    if not isinstance(skip_duplicates, bool):
        raise SpaceError("skip_duplicates", f"got {skip_duplicates!r}; must be true or false")
    return SearchConfig(
        dataset=dataset,
        space=space,
        objectives=objectives,
        n_trials=n_trials,
        sampler=sampler,
        seed=_optional_int("seed", data.get("seed"), low=0, high=MAX_SEED),
        max_params=_optional_int("max_params", data.get("max_params"), low=1),
        warm_start=warm_start,
        input_shape=None if input_shape is None else (input_shape[0], input_shape[1],
                                                       input_shape[2]),
        num_classes=_optional_int("num_classes", data.get("num_classes"), low=2),
        early_stopping=early_stopping,
        skip_duplicates=skip_duplicates,
    )
