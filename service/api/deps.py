"""Injected dependencies: settings, the engine, a read session, the caller's key, the job, the
schedule, the clock.

``JobDep`` is the one place a job id becomes a job: a missing job and another owner's job both
answer 404 job-not-found (so ids of others' jobs are never confirmed); ``ScheduleDep`` does the
same for schedules. A string that cannot be an id (too long, a NUL byte) answers the same 404
without a query.

A request holds at most ONE database connection at a time: the key lookup and the reads share the
request's session (one checkout), and a write first ends that read session (``release``) before
``write_session`` takes a connection. (Holding the read connection while waiting for a second one
is what let 40 concurrent POSTs exhaust the pool: every pooled connection was held by a request
waiting for another, until the pool timeout, a 500.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service.api.problems import Problem, clip
from service.api.rendered import RenderedCache
from service.dashboard.session import current_session
from service.db.base import utcnow
from service.db.tables import ApiKey, Job, Schedule
from service.keys import authenticate, live_key_query
from service.settings import Settings

__all__ = [
    "JOB_ID_PATTERN",
    "MAX_ID_CHARS",
    "ClockDep",
    "EngineDep",
    "JobDep",
    "OwnerDep",
    "RenderedDep",
    "ScheduleDep",
    "SessionDep",
    "SettingsDep",
    "owned_job",
    "plausible_id",
    "release",
]

JOB_ID_PATTERN = r"^job_[0-9A-HJKMNP-TV-Z]{26}$"  # what new_job_id makes ("job_" + a ULID)
MAX_ID_CHARS = 64


def plausible_id(value: str) -> bool:
    """Short, printable, no NUL: worth a query (anything else cannot be a stored job or
    schedule id, and PostgreSQL refuses a NUL in a text parameter)."""
    return len(value) <= MAX_ID_CHARS and value.isprintable()


_bearer = HTTPBearer(auto_error=False, description="An API key from `paretonas keys create`.")


async def get_settings_dep(request: Request) -> Settings:
    """The app's settings (given to ``create_app``). ``async``: attribute reads need no thread
    (FastAPI runs every plain ``def`` dependency in the thread pool, one hop each)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    """The app's engine on the service database."""
    engine: Engine = request.app.state.engine
    return engine


async def get_rendered(request: Request) -> RenderedCache:
    """The app's cache of rendered result bodies (service/api/rendered.py)."""
    rendered: RenderedCache = request.app.state.rendered
    return rendered


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine)]
RenderedDep = Annotated[RenderedCache, Depends(get_rendered)]


async def get_session(engine: EngineDep) -> AsyncIterator[Session]:
    """A read session for the request (writes open their own ``write_session``).

    It ends when the handler returns, before the response is sent (``scope="function"``), so
    the connection is back in the pool while the body is serialised and sent, and a connection
    the server dropped after the reads ran cannot break a response already started: ending a
    read transaction on a dead connection loses nothing, so that error is dropped (SQLAlchemy
    has already discarded the connection).

    ``async``: making a ``Session`` does no I/O, so only its close (a rollback on the
    connection, if one was taken) goes to the thread pool -- one hop instead of two.
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(_close_read_session, session)
        else:
            session.close()


def _close_read_session(session: Session) -> None:
    try:
        session.close()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def release(session: Session) -> None:
    """End the request's read transaction: its connection goes back to the pool before a write
    takes one (loaded rows stay readable)."""
    session.close()


def get_owner(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The caller's live API key; 401 with ``WWW-Authenticate: Bearer`` otherwise.

    Without an Authorization header, a GET (or HEAD) may also be signed in by the dashboard's
    session cookie: the pages read the same JSON. Writes always need the key (no CSRF there).
    """
    if credentials is None and request.method in _READS:
        signed_in = current_session(request, session, settings)
        if signed_in is not None:
            return signed_in.owner
    if credentials is None or credentials.scheme.lower() != "bearer":
        detail = "no API key: send Authorization: Bearer <key> (paretonas keys create --name NAME)"
        raise Problem("unauthorized", status=401, detail=detail, headers=_CHALLENGE)
    owner = authenticate(session, credentials.credentials)
    if owner is None:
        raise _unknown_key()
    return owner


def _unknown_key() -> Problem:
    detail = "the API key is unknown or revoked; create one with paretonas keys create"
    return Problem("unauthorized", status=401, detail=detail, headers=_CHALLENGE)


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_READS = frozenset({"GET", "HEAD"})
OwnerDep = Annotated[ApiKey, Depends(get_owner)]


def owned_job(session: Session, *, job_id: str, owner: ApiKey) -> Job:
    """``owner``'s job ``job_id``; 404 job-not-found when missing or another owner's."""
    job = None
    if plausible_id(job_id):
        job = session.scalars(select(Job).where(Job.id == job_id, Job.owner_id == owner.id)).first()
    if job is None:
        raise _job_not_found(job_id)
    return job


def _job_not_found(job_id: str) -> Problem:
    return Problem(
        "job-not-found",
        status=404,
        detail=f"no job {clip(job_id)} among your jobs; list them with GET /api/v1/jobs",
    )


def get_job(
    job_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Job:
    """The caller's job ``job_id``: the answers of ``get_owner`` (401) then ``owned_job`` (404).

    Every job route polls through here, so it costs one thread-pool hop and, with a bearer key,
    one query: the key's row LEFT JOIN the job (no row: the key is not live, 401; a row without
    a job: 404). A dashboard read signed in by its cookie takes ``get_owner`` then ``owned_job``.
    """
    query = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        query = live_key_query(credentials.credentials)
    if query is None or not plausible_id(job_id):
        owner = get_owner(request, session, settings, credentials)
        return owned_job(session, job_id=job_id, owner=owner)
    row = session.execute(
        query.add_columns(Job).outerjoin(Job, (Job.owner_id == ApiKey.id) & (Job.id == job_id))
    ).one_or_none()
    if row is None:
        raise _unknown_key()
    job: Job | None = row[1]
    if job is None:
        raise _job_not_found(job_id)
    return job


JobDep = Annotated[Job, Depends(get_job)]


def get_schedule(schedule_id: str, owner: OwnerDep, session: SessionDep) -> Schedule:
    """The caller's schedule ``schedule_id``; 404 schedule-not-found when missing or another's
    (without a query for a string that cannot be an id)."""
    schedule = None
    if plausible_id(schedule_id):
        schedule = session.scalars(
            select(Schedule).where(Schedule.id == schedule_id, Schedule.owner_id == owner.id)
        ).first()
    if schedule is None:
        raise Problem(
            "schedule-not-found",
            status=404,
            detail=f"no schedule {clip(schedule_id)} among your schedules; list them with "
            "GET /api/v1/schedules",
        )
    return schedule


ScheduleDep = Annotated[Schedule, Depends(get_schedule)]


async def get_clock(request: Request) -> Callable[[], datetime]:
    """The app's clock (``app.state.clock``; default: UTC now): what "now" is for schedules."""
    clock: Callable[[], datetime] = getattr(request.app.state, "clock", utcnow)
    return clock


ClockDep = Annotated[Callable[[], datetime], Depends(get_clock)]
