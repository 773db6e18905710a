"""The plain frozen records ``search.engine`` hands out: no Optuna object ever leaves search/.

``params`` in an outcome, a record or a front member is the parameter COUNT of the (pruned)
architecture; the trial's choices (``depth``, ``layers.0.kind``, ...) are ``trial_params``
(``TrialTicket.params`` holds them too, as the ticket has no count yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from search.space import Choice

__all__ = ["Baseline", "FrontMember", "NextTrial", "OutcomeState", "StudyRef", "TrialOutcome",
           "TrialRecord", "TrialState", "TrialTicket"]

# complete: trained to the end. stopped: interrupted (Ctrl-C, cancel). stopped_early: the
# Pareto-aware rule stopped it (search.early_stop). duplicate: the same architecture and training
# config as a finished trial (not trained; its values copied). refused: over max_params before
# training (not trained).
OutcomeState = Literal["complete", "stopped", "stopped_early", "duplicate", "refused"]
TrialState = Literal["complete", "stopped", "stopped_early", "duplicate", "refused", "failed",
                     "running", "waiting"]


@dataclass(frozen=True)
class StudyRef:
    """Where a study lives: an Optuna storage URL (``memory://``, ``sqlite:///file.db``,
    ``postgresql+psycopg://...``) and the study's name in it."""

    storage_url: str
    study_name: str


@dataclass(frozen=True)
class Baseline:
    """The early-stopping neighbour of a trial: the finished trial with the best accuracy among
    those with no more parameters than the trial can end with, and its validation accuracy after
    each training epoch (``curve[e - 1]`` is epoch e)."""

    number: int
    curve: tuple[float, ...]


@dataclass(frozen=True)
class TrialTicket:
    """A trial from ``ask``: its number, its choices and the architecture they decode to.

    ``skip``: an outcome decided without training (a duplicate or a refusal; ``run_ticket``
    returns it as it is). ``baseline``: the neighbour early stopping compares the trial with
    (None: early stopping off, or nothing with fewer parameters has finished yet)."""

    number: int
    params: dict[str, Choice]
    spec_json: str
    skip: TrialOutcome | None = None
    baseline: Baseline | None = None


@dataclass(frozen=True, eq=False)
class TrialOutcome:
    """What ``run_ticket`` measured. ``values`` are the objective values in study order
    (accuracy, params[, macs]); ``feasible`` is ``params <= max_params`` (always True without a
    limit) and ``excess`` is params - max_params (None without a limit), the constraint value;
    ``spec_json`` is the pruned architecture; ``weights`` its safetensors bytes;
    ``preprocess_json`` what the model expects of raw inputs (``models.preprocess.Preprocess``
    JSON: the training statistics it normalises with, input shape and dtype, classes, dataset).

    ``reason`` says why a trial was not trained or stopped early; ``duplicate_of`` is the trial a
    duplicate copies; ``stopped_epoch`` and ``lost_to`` the checkpoint epoch and the neighbour a
    trial stopped early lost to; ``curve`` the validation accuracy after each training epoch."""

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
    reason: str | None = None
    duplicate_of: int | None = None
    stopped_epoch: int | None = None
    lost_to: int | None = None
    curve: tuple[float, ...] = ()


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a study as stored. Measurements are None until the trial completes (and stay
    None for failed trials); ``reason`` says why a trial failed, was refused or stopped early;
    the other fields as in ``TrialOutcome``."""

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
    duplicate_of: int | None = None
    stopped_epoch: int | None = None
    lost_to: int | None = None
    curve: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON of the record (``values`` as a list)."""
        return {
            "number": self.number, "state": self.state, "trial_params": dict(self.trial_params),
            "values": None if self.values is None else list(self.values),
            "val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy,
            "params": self.params, "macs": self.macs, "feasible": self.feasible,
            "train_seconds": self.train_seconds, "spec_json": self.spec_json,
            "reason": self.reason, "duplicate_of": self.duplicate_of,
            "stopped_epoch": self.stopped_epoch, "lost_to": self.lost_to,
            "curve": list(self.curve),
        }


@dataclass(frozen=True)
class NextTrial:
    """What ``search.engine.next_trial`` found: the next trial to train (None when the search
    is over), the trials it settled on the way without training (duplicates and refusals, already
    told to the study; each ticket's ``skip`` is its outcome), and why the search is over
    (``finished``)."""

    ticket: TrialTicket | None
    skipped: tuple[TrialTicket, ...] = ()
    finished: str | None = None


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
