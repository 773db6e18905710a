"""The plain frozen records ``search.engine`` hands out: no Optuna object ever leaves search/.

``params`` in an outcome, a record or a front member is the parameter COUNT of the (pruned)
architecture; the trial's choices (``depth``, ``layers.0.kind``, ...) are ``trial_params``
(``TrialTicket.params`` holds them too, as the ticket has no count yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from search.space import Choice

__all__ = ["FrontMember", "OutcomeState", "StudyRef", "TrialOutcome", "TrialRecord",
           "TrialState", "TrialTicket"]

OutcomeState = Literal["complete", "stopped"]
TrialState = Literal["complete", "stopped", "failed", "running", "waiting"]


@dataclass(frozen=True)
class StudyRef:
    """Where a study lives: an Optuna storage URL (``memory://``, ``sqlite:///file.db``,
    ``postgresql+psycopg://...``) and the study's name in it."""

    storage_url: str
    study_name: str


@dataclass(frozen=True)
class TrialTicket:
    """A trial from ``ask``: its number, its choices and the architecture they decode to."""

    number: int
    params: dict[str, Choice]
    spec_json: str


@dataclass(frozen=True, eq=False)
class TrialOutcome:
    """What ``run_ticket`` measured. ``values`` are the objective values in study order
    (accuracy, params[, macs]); ``feasible`` is ``params <= max_params`` (always True without a
    limit) and ``excess`` is params - max_params (None without a limit), the constraint value;
    ``spec_json`` is the pruned architecture; ``weights`` its safetensors bytes;
    ``preprocess_json`` what the model expects of raw inputs (``models.preprocess.Preprocess``
    JSON: the training statistics it normalises with, input shape and dtype, classes, dataset)."""

    number: int
    state: OutcomeState
    values: tuple[float, ...]
    val_accuracy: float
    test_accuracy: float
    params: int
    macs: int
    feasible: bool
    train_seconds: float
    spec_json: str
    weights: bytes | None = field(default=None, repr=False)
    excess: int | None = None
    preprocess_json: str | None = None


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a study as stored. Measurements are None until the trial completes (and stay
    None for failed trials); ``reason`` says why a trial failed."""

    number: int
    state: TrialState
    trial_params: dict[str, Choice]
    values: tuple[float, ...] | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    params: int | None = None
    macs: int | None = None
    feasible: bool | None = None
    train_seconds: float | None = None
    spec_json: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON of the record (``values`` as a list)."""
        return {
            "number": self.number, "state": self.state, "trial_params": dict(self.trial_params),
            "values": None if self.values is None else list(self.values),
            "val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy,
            "params": self.params, "macs": self.macs, "feasible": self.feasible,
            "train_seconds": self.train_seconds, "spec_json": self.spec_json,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FrontMember:
    """A complete, feasible, non-dominated trial."""

    number: int
    trial_params: dict[str, Choice]
    values: tuple[float, ...]
    val_accuracy: float
    test_accuracy: float
    params: int
    macs: int
    train_seconds: float
    spec_json: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON of the member (``values`` as a list)."""
        return {
            "number": self.number, "trial_params": dict(self.trial_params),
            "values": list(self.values), "val_accuracy": self.val_accuracy,
            "test_accuracy": self.test_accuracy, "params": self.params, "macs": self.macs,
            "train_seconds": self.train_seconds, "spec_json": self.spec_json,
        }
