"""/api/v1/jobs: submit, list, show and cancel searches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from service.api import jobs
from service.api.deps import EngineDep, JobDep, OwnerDep, SessionDep, SettingsDep, release
from service.api.openapi import problems
from service.api.presence import worker_warning
from service.api.rendered import json_response
from service.api.schemas import JobCreate, JobPublic, JobsPublic, JobStatus

__all__ = ["router"]

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=202,
    responses={
        200: {"model": JobPublic, "description": "Replay of an Idempotency-Key"},
        202: {"description": "Queued; Location names the job"},
        **problems(409, 429),
    },
)
def submit_job(
    body: JobCreate,
    request: Request,
    response: Response,
    owner: OwnerDep,
    engine: EngineDep,
    settings: SettingsDep,
    session: SessionDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JobPublic:
    """Queue a search (202). A retry with the same Idempotency-Key and body returns the same
    job with 200; the same key with another body is 409."""
    release(session)  # the key was looked up in it; the write takes its own connection
    job, created = jobs.create_job(
        engine, body=body, owner=owner, settings=settings, idempotency_key=idempotency_key
    )
    response.status_code = 202 if created else 200
    response.headers["Location"] = str(request.url_for("get_job", job_id=job.id).path)
    return jobs.job_public(job, warning=worker_warning(engine, settings=settings))


@router.get("")
def list_jobs(
    owner: OwnerDep,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    status: JobStatus | None = None,
) -> JobsPublic:
    """Your jobs, newest first; follow ``next_cursor`` for the next page."""
    rows, next_cursor = jobs.list_jobs(
        session, owner=owner, limit=limit, cursor=cursor, status=status
    )
    active = any(row.status in ("queued", "running") for row in rows)
    warning = worker_warning(session, settings=settings) if active else None
    return JobsPublic(
        data=[jobs.job_public(row, warning=warning) for row in rows], next_cursor=next_cursor
    )


@router.get("/{job_id}", name="get_job", response_model=JobPublic, responses=problems(404))
def get_job(job: JobDep, session: SessionDep, settings: SettingsDep) -> Response:
    """A job: status, trial counts, front size, hypervolume, timestamps, error, and a
    ``warning`` while no worker is live ("no worker has been seen for N s ...")."""
    active = job.status in ("queued", "running")
    warning = worker_warning(session, settings=settings) if active else None
    return json_response(jobs.job_public(job, warning=warning))


@router.post(
    "/{job_id}:cancel",
    responses={
        200: {"model": JobPublic, "description": "Cancelled (it was queued)"},
        202: {"model": JobPublic, "description": "Cancel requested (it is running)"},
        **problems(404, 409),
    },
)
def cancel_job(
    job: JobDep, session: SessionDep, engine: EngineDep, response: Response
) -> JobPublic:
    """queued: cancelled now (200); running: cancel requested, workers stop within an epoch
    (202); finished: 409."""
    release(session)  # one connection at a time: the read's goes back before the write's
    cancelled = jobs.cancel_job(engine, job_id=job.id)
    response.status_code = 200 if cancelled.status == "cancelled" else 202
    return jobs.job_public(cancelled)
