"""Liveness and readiness: /healthz (the process answers) and /readyz (database, workers).

``/readyz`` answers 503 when the database is unreachable or not migrated: this process cannot
serve. With the database fine it answers 200, ``status`` "ready" when at least one worker is live
and "degraded" (``degraded: true``, with the reason) when no worker has been seen within
``PARETONAS_WORKER_STALE_SECONDS``: the API can still take and show jobs, so a load balancer must
keep sending traffic to it, but nothing will run them. Alert on ``degraded`` (or on
``paretonas_workers{state="live"} == 0`` in ``/metrics``), not on the status code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import EngineDep, SettingsDep
from service.api.openapi import problems
from service.api.presence import read_presence
from service.api.problems import Problem
from service.db.engine import read_session
from service.db.migrations import current_revision, head_revision

__all__ = ["Readiness", "router"]

router = APIRouter(tags=["health"])


class WorkerPublic(BaseModel):
    """A worker as last seen: live (seen within the stale limit), stale, or stopped."""

    id: str = Field(description="host:pid:random, as in the trials' worker_id")
    hostname: str
    device: str
    state: Literal["live", "stale", "stopped"]
    started_at: datetime
    last_seen_at: datetime
    seconds_since_seen: float
    job_id: str | None = Field(description="the job of the trial it runs now (None: idle)")
    trial_number: int | None


class WorkersPublic(BaseModel):
    """Worker presence: how many are live, and the most recently seen (at most 100)."""

    live: int
    stale_after_seconds: float
    last_seen_at: datetime | None
    seen: list[WorkerPublic]


class Readiness(BaseModel):
    """The database is at head; ``degraded`` when no worker is live (``reasons`` says why)."""

    status: Literal["ready", "degraded"]
    revision: str
    degraded: bool
    reasons: list[str]
    workers: WorkersPublic


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (touches no database)."""
    return {"status": "ok"}


@router.get("/readyz", responses=problems(503))
def readyz(engine: EngineDep, settings: SettingsDep) -> Readiness:
    """The database answers and is migrated (else 503); "degraded" when no worker is live."""
    head = head_revision()
    try:
        revision = current_revision(engine)
        if revision == head:
            with read_session(engine) as session:
                presence = read_presence(
                    session, stale_after_seconds=settings.worker_stale_seconds
                )
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise Problem(
            "not-ready",
            status=503,
            detail=f"database unreachable ({reason}); check PARETONAS_DATABASE_URL",
        ) from None
    if revision != head:
        raise Problem(
            "not-ready",
            status=503,
            detail=f"database at revision {revision or 'none'}, head is {head}; "
            "run `paretonas db upgrade`",
        )
    warning = presence.warning()
    return Readiness(
        status="degraded" if warning else "ready",
        revision=head,
        degraded=warning is not None,
        reasons=[warning] if warning else [],
        workers=WorkersPublic(
            live=presence.live,
            stale_after_seconds=presence.stale_after_seconds,
            last_seen_at=presence.last_seen_at,
            seen=[WorkerPublic(**vars(worker)) for worker in presence.workers],
        ),
    )
