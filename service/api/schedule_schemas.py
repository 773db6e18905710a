"""Bodies of /api/v1/schedules: ``ScheduleCreate``, ``ScheduleUpdate``, ``SchedulePublic``...

``job`` is exactly the body of ``POST /jobs`` (``JobCreate``), validated by the same function
(``service.api.jobs.build_job``) when the schedule is created or changed, and again at each run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.api.schemas import JobCreate

__all__ = [
    "RunStatus",
    "RunTrigger",
    "ScheduleCreate",
    "SchedulePublic",
    "ScheduleRunPublic",
    "ScheduleRunsPublic",
    "ScheduleUpdate",
    "SchedulesPublic",
]

Overlap = Literal["skip", "queue"]
WarmStart = Literal["none", "front"]
RunTrigger = Literal["cron", "catch-up", "manual"]
RunStatus = Literal["started", "skipped", "failed"]
_CRON = "Five fields: minute hour day-of-month month day-of-week, e.g. '30 2 * * *'."


def _no_nul(value: str | None) -> str | None:
    """The text columns keep what the client sent, and PostgreSQL text cannot hold a NUL."""
    if value is not None and "\x00" in value:
        raise ValueError("contains a NUL byte (\\u0000); remove it")
    return value


# A schedule's name, cron and zone as stored: 1-200 / 200 / 64 characters, no NUL byte.
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Cron = Annotated[str, Field(max_length=200, description=_CRON), AfterValidator(_no_nul)]
Zone = Annotated[str, Field(max_length=64, description="An IANA zone name."),
                 AfterValidator(_no_nul)]


class ScheduleCreate(BaseModel):
    """POST /schedules: ``{"name": "nightly", "cron": "30 2 * * *", "job": {"dataset": ...}}``."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    cron: Cron
    timezone: Zone = "UTC"
    job: JobCreate = Field(description="The body of POST /jobs that each run submits.")
    overlap: Overlap = Field(
        default="skip",
        description="skip: no new run while the previous run's job is queued or running; "
        "queue: start it anyway (queued behind).",
    )
    warm_start: WarmStart = Field(
        default="none",
        description="front: each run first tries the previous successful run's front.",
    )
    paused: bool = False


class ScheduleUpdate(BaseModel):
    """PATCH /schedules/{id}: any subset of the fields of ``ScheduleCreate``."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    cron: Cron | None = None
    timezone: Zone | None = None
    job: JobCreate | None = None
    overlap: Overlap | None = None
    warm_start: WarmStart | None = None
    paused: bool | None = None


class ScheduleRunPublic(BaseModel):
    """One due time of a schedule and what became of it."""

    id: int
    due_at: datetime = Field(description="The due time (UTC); for a manual run, when asked.")
    trigger: RunTrigger
    status: RunStatus
    job_id: str | None = Field(description="The run's job (started runs).")
    warm_start_from: str | None = Field(description="The job whose front was enqueued first.")
    reason: str | None = Field(description="Why it was skipped or failed.")
    fired_by: str = Field(description="The scheduler (host:pid) or api that recorded it.")
    created_at: datetime


class ScheduleRunsPublic(BaseModel):
    """A page of a schedule's runs, newest first."""

    data: list[ScheduleRunPublic]
    next_cursor: str | None


class SchedulePublic(BaseModel):
    """A schedule as the API shows it."""

    id: str
    name: str
    cron: str
    timezone: str
    description: str = Field(description="The cron expression in words, with its zone.")
    job: dict[str, Any] = Field(description="The job template (the POST /jobs body).")
    overlap: Overlap
    warm_start: WarmStart
    paused: bool
    next_run_at: datetime | None = Field(description="Next due time in the schedule's zone.")
    next_run_at_utc: datetime | None = Field(description="The same instant in UTC.")
    last_run: ScheduleRunPublic | None
    job_ids: list[str] = Field(description="Its runs' jobs, newest first (at most 100).")
    created_at: datetime
    updated_at: datetime


class SchedulesPublic(BaseModel):
    """A page of schedules, newest first; pass ``next_cursor`` back as ``?cursor=``."""

    data: list[SchedulePublic]
    next_cursor: str | None
