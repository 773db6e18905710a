"""The service's tables (SQLAlchemy 2 declarative): API keys, jobs, trials, fronts, weights,
cron schedules and their runs, per-epoch learning curves, the dashboard's sign-in sessions and
the workers' heartbeats.

Column names are the contract between the API and the workers (see docs/INTERFACES.md). Named
"tables" so they are never confused with the PyTorch ``models/`` package. Timestamps are
timezone-aware UTC (``UTCDateTime``). Optuna's own tables live in a separate storage.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UTCDateTime, utcnow

__all__ = [
    "JOB_STATUSES",
    "MAX_TRIAL_NUMBER",
    "RUN_STATUSES",
    "RUN_TRIGGERS",
    "SCHEDULE_OVERLAPS",
    "SCHEDULE_WARM_STARTS",
    "TRIAL_STATES",
    "ApiKey",
    "Base",
    "DashboardSession",
    "HypervolumeHistory",
    "Job",
    "ParetoMember",
    "Schedule",
    "ScheduleRun",
    "Trial",
    "TrialEpoch",
    "TrialWeights",
    "Worker",
]

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
MAX_TRIAL_NUMBER = 2**31 - 1  # trials.number is an INTEGER column: nothing larger can be stored
# stopped: interrupted by a cancel; stopped_early: the Pareto-aware rule stopped it (epoch in
# stopped_epoch, the neighbour it lost to in lost_to); duplicate: not trained, the same
# architecture as trial duplicate_of; refused: not trained, over max_params (search.verdicts).
TRIAL_STATES = ("running", "complete", "failed", "stopped", "stopped_early", "duplicate",
                "refused")
SCHEDULE_OVERLAPS = ("skip", "queue")
SCHEDULE_WARM_STARTS = ("none", "front")
RUN_TRIGGERS = ("cron", "catch-up", "manual")
RUN_STATUSES = ("started", "skipped", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ApiKey(Base):
    """An API key: only its sha256 is stored; ``prefix`` (first 8 characters) is for display."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Job(Base):
    """One search: its stored config, status, denormalised trial counters and front summary."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_owner_id_created_at", "owner_id", "created_at"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
    )

    id: Mapped[str] = mapped_column(String(30), primary_key=True)  # "job_" + 26 characters
    owner_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))  # indexed with created_at
    status: Mapped[str] = mapped_column(String(16), default="queued")
    dataset: Mapped[str] = mapped_column(String(100))
    config_json: Mapped[str] = mapped_column(Text)  # search.config.SearchConfig.to_dict()
    n_trials: Mapped[int] = mapped_column(Integer)
    parallelism: Mapped[int] = mapped_column(Integer, default=1)
    # What one trial asks of a Ray cluster (the Ray driver; plain workers train on their --device).
    gpus_per_trial: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    cpus_per_trial: Mapped[float] = mapped_column(Float, default=1.0, server_default=text("1"))
    study_name: Mapped[str] = mapped_column(String(100), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    reference_point_json: Mapped[str] = mapped_column(Text)
    n_complete: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    n_failed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    n_running: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    n_stopped_early: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    n_skipped: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    front_size: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    hypervolume: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Why a job ended before n_trials trained trials (e.g. every architecture of its space done).
    finished_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Trial(Base):
    """One Optuna trial of a job; a retry of a lost trial is a new number with ``attempt`` + 1."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("job_id", "number"),
        Index("ix_trials_job_id_state", "job_id", "state"),
        Index("ix_trials_state_lease_expires_at", "state", "lease_expires_at"),
        CheckConstraint(_in("state", TRIAL_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    retry_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    params_json: Mapped[str] = mapped_column(Text)
    spec_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # models.preprocess.Preprocess JSON: training statistics, input shape/dtype, classes, dataset
    preprocess_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    val_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    test_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    macs: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    feasible: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    train_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duplicate_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stopped_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lost_to: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ParetoMember(Base):
    """A current member of a job's Pareto front (reading a front costs the size of the front)."""

    __tablename__ = "pareto_members"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    trial_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    val_accuracy: Mapped[float] = mapped_column(Float)
    test_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    params: Mapped[int] = mapped_column(BigInteger)
    macs: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    spec_json: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HypervolumeHistory(Base):
    """The job's hypervolume after each complete trial (None while the front is empty)."""

    __tablename__ = "hypervolume_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    n_complete: Mapped[int] = mapped_column(Integer)
    hypervolume: Mapped[float | None] = mapped_column(Float, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrialWeights(Base):
    """safetensors bytes (models.serialize.to_safetensors) of a front member; deleted on leaving."""

    __tablename__ = "trial_weights"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    trial_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Schedule(Base):
    """A cron schedule of one owner: a job template (the POST /jobs body) run at each due time.

    ``next_due_at`` is the next due time (UTC) not yet handled; a scheduler claims it by moving
    it forward in the same transaction that records the run (see service/scheduler/fire.py).
    """

    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key"),
        Index("ix_schedules_owner_id_created_at", "owner_id", "created_at"),
        Index("ix_schedules_paused_next_due_at", "paused", "next_due_at"),
        CheckConstraint(_in("overlap", SCHEDULE_OVERLAPS), name="overlap"),
        CheckConstraint(_in("warm_start", SCHEDULE_WARM_STARTS), name="warm_start"),
    )

    id: Mapped[str] = mapped_column(String(30), primary_key=True)  # "sch_" + 26 characters
    owner_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    job_json: Mapped[str] = mapped_column(Text)  # the JobCreate body as sent (exclude_unset)
    overlap: Mapped[str] = mapped_column(String(8))
    warm_start: Mapped[str] = mapped_column(String(8))
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    next_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ScheduleRun(Base):
    """One due time of a schedule: started (``job_id`` set), skipped or failed (``reason``).

    UNIQUE (schedule_id, due_at, manual) is what makes a due time produce at most one run,
    however many schedulers share the database. Deleting a schedule deletes its runs, not its jobs.
    """

    __tablename__ = "schedule_runs"
    __table_args__ = (
        UniqueConstraint("schedule_id", "due_at", "manual"),
        Index("ix_schedule_runs_schedule_id_id", "schedule_id", "id"),
        CheckConstraint(_in("trigger", RUN_TRIGGERS), name="trigger"),
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    manual: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    warm_start_from: Mapped[str | None] = mapped_column(String(30), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    fired_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrialEpoch(Base):
    """One epoch of a trial's learning curve (``search.training.EpochReport``).

    Written by the worker in batches: with each lease renewal and with the trial's result, never
    one commit per epoch. ``epoch`` counts from 1 across both phases (train, then finetune).
    """

    __tablename__ = "trial_epochs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    trial_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    phase: Mapped[str] = mapped_column(String(16))  # "train" | "finetune"
    train_loss: Mapped[float] = mapped_column(Float)
    val_accuracy: Mapped[float] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)


class DashboardSession(Base):
    """A dashboard sign-in: the cookie carries a signed random token, only its sha256 is stored.

    Signing out deletes the row, so a copied cookie dies with the session; a revoked key ends
    every session of it. ``csrf_token`` guards the session's state-changing forms.
    """

    __tablename__ = "dashboard_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
class Worker(Base):
    """A worker process and its heartbeat: ``last_seen_at`` is renewed every heartbeat_seconds.

    ``job_id``/``trial_number``: what it runs now (None: idle). ``stopped_at``: it exited cleanly.
    """

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # host:pid:random
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(30), nullable=True)
    trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
