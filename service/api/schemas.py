"""Request and response bodies, named by role (``JobCreate``, ``JobPublic``, ``JobsPublic``...).

``JobCreate`` checks only JSON types; the search itself (space, objectives, sampler, training) is
validated by ``search.config.parse_config``, so the API and the workers accept exactly the same
searches. The API never accepts a filesystem path: datasets are names the operator registered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator

from search.config import DIRECTIONS, SAMPLERS
from search.training.config import MAX_SEED
from service.api.space_schema import SpaceSchema, TrainSchema

__all__ = [
    "HypervolumePoint",
    "JobCreate",
    "JobPublic",
    "JobsPublic",
    "ParetoMemberPublic",
    "ParetoPublic",
    "ProblemPublic",
    "TrialCounts",
    "TrialPublic",
    "TrialsPublic",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TrialState = Literal["running", "complete", "failed", "stopped", "stopped_early", "duplicate",
                     "refused"]
MAX_GPUS_PER_TRIAL = 64  # more than any one node holds: such a trial could never be placed
MAX_CPUS_PER_TRIAL = 1024
DEFAULT_GPUS_PER_TRIAL = 0.0
DEFAULT_CPUS_PER_TRIAL = 1.0
MAX_COUNT = 2**31 - 1


def _json_object(value: Any) -> dict[str, Any]:
    """Any JSON object, as sent: search.space.parse_space validates it (the one validation)."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _documented_as(model: type[BaseModel]) -> Any:
    return PlainValidator(_json_object, json_schema_input_type=model)


PositiveInt = Annotated[int, Field(strict=True, ge=1, le=MAX_COUNT)]
SpaceJSON = Annotated[dict[str, Any], _documented_as(SpaceSchema)]
TrainJSON = Annotated[dict[str, Any], _documented_as(TrainSchema)]


class JobCreate(BaseModel):
    """POST /jobs: only ``dataset`` is required; ``{"dataset": "digits", "n_trials": 4}``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"dataset": "digits", "n_trials": 4},
                {
                    "dataset": "digits",
                    "n_trials": 40,
                    "objectives": ["accuracy", "params"],
                    "sampler": "tpe",
                    "seed": 7,
                    "parallelism": 2,
                    "space": {"depth": [1, 2], "kinds": ["full", "bilinear", "lowrank"]},
                    "train": {"epochs": 5},
                },
            ]
        },
    )

    dataset: str = Field(
        max_length=100, description="A built-in (digits) or operator-registered dataset name."
    )
    space: SpaceJSON | None = Field(
        default=None, description="Search space (search.space JSON); default: the default space."
    )
    objectives: list[Annotated[str, Field(json_schema_extra={"enum": list(DIRECTIONS)})]] | None = (
        Field(
            default=None,
            max_length=3,
            description='["accuracy", "params"] (default) or with "macs".',
        )
    )
    n_trials: PositiveInt | None = Field(default=None, description="Trials to run (default 40).")
    sampler: Annotated[str, Field(json_schema_extra={"enum": list(SAMPLERS)})] | None = Field(
        default=None, description="tpe (default), nsga2 or random."
    )
    seed: Annotated[int, Field(strict=True, ge=0, le=MAX_SEED)] | None = Field(
        default=None, description="Makes the sampler's choices reproducible."
    )
    max_params: Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)] | None = Field(
        default=None, description="Constraint: larger architectures never reach the front."
    )
    parallelism: PositiveInt | None = Field(
        default=None, description="Trials of this job run at once (default min(n_trials, 4))."
    )
    train: TrainJSON | None = Field(
        default=None, description="Overrides of the space's training budget (epochs, lr, ...)."
    )
    gpus_per_trial: Annotated[float, Field(ge=0, le=MAX_GPUS_PER_TRIAL)] | None = Field(
        default=None,
        description="GPUs one trial asks of a Ray cluster (default 0): a fraction such as 0.25 "
        "shares a GPU between four trials; above 1, whole GPUs. Plain workers ignore it.",
    )
    cpus_per_trial: Annotated[float, Field(gt=0, le=MAX_CPUS_PER_TRIAL)] | None = Field(
        default=None,
        description="CPUs one trial asks of a Ray cluster (default 1). Plain workers ignore it.",
    )

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_gpus_above_one(cls, value: float | None) -> float | None:
        if value is not None and value > 1 and not value.is_integer():
            raise ValueError(
                f"gpus_per_trial: got {value}; a trial shares one GPU (a fraction up to 1, e.g. "
                f"0.25) or takes whole GPUs (2, 3, ...): use {int(value)} or {int(value) + 1}"
            )
        return value

    early_stopping: bool | dict[str, Any] | None = Field(
        default=None,
        description='Pareto-aware early stopping: true, false or {"enabled", "checkpoints", '
        '"margin"} (search.early_stop; default: see the README).',
    )


class TrialCounts(BaseModel):
    """Trials of a job by state (maintained by the workers)."""

    running: int
    complete: int
    failed: int
    stopped_early: int = Field(description="Stopped by the early-stopping rule (trained).")
    skipped: int = Field(description="Duplicates and refusals (not trained, not counted).")


class JobPublic(BaseModel):
    """A job as the API shows it."""

    id: str
    status: JobStatus
    dataset: str
    n_trials: int
    parallelism: int
    gpus_per_trial: float
    cpus_per_trial: float
    cancel_requested: bool
    trials: TrialCounts
    front_size: int
    hypervolume: float | None
    reference_point: list[float] | None
    error: str | None
    finished_reason: str | None = Field(
        description="Why the job ended before n_trials trained trials (e.g. space used up)."
    )
    config: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    warning: str | None = Field(
        default=None,
        description="set on a queued or running job while no worker is live: "
        '"no worker has been seen for N s; ..." (null otherwise)',
    )


class JobsPublic(BaseModel):
    """A page of jobs, newest first; pass ``next_cursor`` back as ``?cursor=`` (null: last)."""

    data: list[JobPublic]
    next_cursor: str | None


class TrialPublic(BaseModel):
    """One trial: its architecture choices and, once complete, its results."""

    number: int
    attempt: int
    retry_of: int | None
    state: TrialState
    choices: dict[str, Any] = Field(description="The sampled parameters (search.space names).")
    spec: dict[str, Any] | None = Field(description="The decoded (and pruned) architecture.")
    preprocess: dict[str, Any] | None = Field(
        default=None,
        description="What the trained model expects of raw inputs "
        "(models.preprocess.Preprocess: mean, std, input_shape, input_dtype, num_classes, "
        "dataset); the downloaded model applies it itself.",
    )
    val_accuracy: float | None
    test_accuracy: float | None
    params: int | None
    macs: int | None
    feasible: bool | None
    train_seconds: float | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(description="Why it failed, was refused or stopped.")
    duplicate_of: int | None = Field(description="A duplicate: the trial whose values it has.")
    stopped_epoch: int | None = Field(description="Stopped early: after this epoch.")
    lost_to: int | None = Field(description="Stopped early: the neighbour it lost to.")


class TrialsPublic(BaseModel):
    """A page of a job's trials."""

    data: list[TrialPublic]
    next_cursor: str | None


class ParetoMemberPublic(BaseModel):
    """A member of the front; ``model_urls`` download its model (``safetensors``, ``onnx``),
    ``model_url`` is the safetensors one."""

    trial_number: int
    val_accuracy: float
    test_accuracy: float | None
    params: int
    macs: int | None
    spec: dict[str, Any]
    added_at: datetime
    model_url: str
    model_urls: dict[str, str] = Field(
        description="Download URL per format: safetensors (the stored weights) and onnx."
    )


class HypervolumePoint(BaseModel):
    """The hypervolume after ``n_complete`` complete trials; it holds until the next point (the
    history lists the points where it changed, and the latest)."""

    n_complete: int
    hypervolume: float | None
    recorded_at: datetime


class ParetoPublic(BaseModel):
    """A job's front (by parameters, ascending), its reference point and hypervolume history."""

    job_id: str
    objectives: list[str]
    reference_point: list[float] | None
    hypervolume: float | None
    members: list[ParetoMemberPublic]
    history: list[HypervolumePoint]


class ProblemPublic(BaseModel):
    """An error (RFC 9457 problem+json): a stable ``type`` per kind of error, the ``detail``
    names the field, the value and the fix; some kinds add members (``path``, ``allowed``,
    ``limit``, ``setting``, ``errors``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://paretonas.dev/problems/limit-exceeded",
                    "title": "Limit exceeded",
                    "status": 422,
                    "detail": "train.epochs: got 100000; this service allows at most 500 per "
                    "trial (operators raise PARETONAS_LIMITS__MAX_EPOCHS)",
                    "instance": "/api/v1/jobs",
                    "path": "train.epochs",
                    "limit": 500,
                    "setting": "PARETONAS_LIMITS__MAX_EPOCHS",
                }
            ]
        },
    )

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
