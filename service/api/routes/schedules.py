"""/api/v1/schedules: cron schedules that submit a job template at each due time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from service.api import schedules
from service.api.deps import (
    ClockDep,
    EngineDep,
    OwnerDep,
    ScheduleDep,
    SessionDep,
    SettingsDep,
    release,
)
from service.api.schedule_schemas import (
    ScheduleCreate,
    SchedulePublic,
    ScheduleRunPublic,
    ScheduleRunsPublic,
    SchedulesPublic,
    ScheduleUpdate,
)
from service.db.engine import read_session

__all__ = ["router"]

router = APIRouter(prefix="/schedules", tags=["schedules"])


@router.post(
    "",
    status_code=201,
    responses={200: {"model": SchedulePublic, "description": "Replay of an Idempotency-Key"}},
)
def create_schedule(
    body: ScheduleCreate,
    request: Request,
    response: Response,
    owner: OwnerDep,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> SchedulePublic:
    """Create a schedule (201). Bad cron or zone: 422 naming it; a job template POST /jobs
    would refuse: the same problem. Idempotency-Key replays answer 200."""
    release(session)  # the key was looked up in it; the write takes its own connection
    schedule, created = schedules.create_schedule(
        engine,
        body=body,
        owner=owner,
        settings=settings,
        idempotency_key=idempotency_key,
        now=clock(),
    )
    response.status_code = 201 if created else 200
    response.headers["Location"] = str(
        request.url_for("get_schedule", schedule_id=schedule.id).path
    )
    with read_session(engine) as session:
        return schedules.schedule_public(session, schedule)


@router.get("")
def list_schedules(
    owner: OwnerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> SchedulesPublic:
    """Your schedules, newest first; follow ``next_cursor`` for the next page."""
    rows, next_cursor = schedules.list_schedules(
        session, owner=owner, limit=limit, cursor=cursor
    )
    return SchedulesPublic(
        data=[schedules.schedule_public(session, row) for row in rows], next_cursor=next_cursor
    )


@router.get("/{schedule_id}", name="get_schedule")
def get_schedule(schedule: ScheduleDep, session: SessionDep) -> SchedulePublic:
    """A schedule: next due time (its zone and UTC), last run, its runs' job ids."""
    return schedules.schedule_public(session, schedule)


@router.patch("/{schedule_id}")
def update_schedule(
    schedule: ScheduleDep,
    body: ScheduleUpdate,
    owner: OwnerDep,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> SchedulePublic:
    """Pause or resume; change name, cron, zone, template, overlap or warm start."""
    release(session)  # one connection at a time: the read's goes back before the write's
    updated = schedules.update_schedule(
        engine, schedule_id=schedule.id, body=body, owner=owner, settings=settings, now=clock()
    )
    with read_session(engine) as session:
        return schedules.schedule_public(session, updated)


@router.delete("/{schedule_id}", status_code=204)
def delete_schedule(schedule: ScheduleDep, session: SessionDep, engine: EngineDep) -> Response:
    """Delete the schedule and its runs; the jobs it started stay."""
    release(session)
    schedules.delete_schedule(engine, schedule_id=schedule.id)
    return Response(status_code=204)


@router.post("/{schedule_id}:run", status_code=202)
def run_schedule(
    schedule: ScheduleDep,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> ScheduleRunPublic:
    """Start a run now (202, with its job id); 422 run-failed (recorded) if it cannot start."""
    release(session)
    run = schedules.run_now(engine, schedule_id=schedule.id, settings=settings, now=clock())
    return schedules.run_public(run)


@router.get("/{schedule_id}/runs")
def list_runs(
    schedule: ScheduleDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> ScheduleRunsPublic:
    """The schedule's runs newest first: started, skipped (missed, overlap) and failed."""
    rows, next_cursor = schedules.list_runs(
        session, schedule_id=schedule.id, limit=limit, cursor=cursor
    )
    return ScheduleRunsPublic(
        data=[schedules.run_public(row) for row in rows], next_cursor=next_cursor
    )
