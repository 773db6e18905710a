"""Schedule use cases below the routes: create (idempotent), list, show, change, delete, run now.

A schedule's ``job`` template is validated by ``jobs.build_job``, the function POST /jobs uses, so
a template that POST /jobs would refuse is refused here with the same problem, at creation.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.api.idempotency import find_replay
from service.api.jobs import build_job, new_id
from service.api.pagination import decode_keyset, decode_row_id, encode_cursor
from service.api.problems import Problem
from service.api.schedule_schemas import (
    ScheduleCreate,
    SchedulePublic,
    ScheduleRunPublic,
    ScheduleUpdate,
)
from service.api.schemas import JobCreate
from service.db.engine import write_session
from service.db.tables import ApiKey, Schedule, ScheduleRun
from service.scheduler import fire  # a module: service.scheduler.fire imports service.api.jobs
from service.scheduler.cron import Cron, CronError
from service.settings import Settings

__all__ = [
    "create_schedule",
    "delete_schedule",
    "list_runs",
    "list_schedules",
    "run_now",
    "run_public",
    "schedule_public",
    "update_schedule",
]

JOB_IDS_SHOWN = 100
API_FIRED_BY = "api"


def _cron(expression: str, timezone: str) -> Cron:
    try:
        return Cron.parse(expression, timezone)
    except CronError as error:
        slug = "invalid-cron" if error.field == "cron" else "invalid-timezone"
        value = expression if error.field == "cron" else timezone
        raise Problem(
            slug, status=422, detail=f"{error.field}: {error.detail}", path=error.field,
            value=value,
        ) from None


def _template(job: JobCreate) -> dict[str, Any]:
    return job.model_dump(mode="json", exclude_unset=True)


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _check_template(job: JobCreate, *, owner: ApiKey, settings: Settings) -> None:
    build_job(job, owner=owner, settings=settings, digest="")  # raises what POST /jobs raises


def create_schedule(
    engine: Engine,
    *,
    body: ScheduleCreate,
    owner: ApiKey,
    settings: Settings,
    idempotency_key: str | None,
    now: datetime,
) -> tuple[Schedule, bool]:
    """Store a schedule; (schedule, created). Idempotency-Key works as for POST /jobs."""
    digest = _digest(body.model_dump(mode="json", exclude_unset=True))
    if idempotency_key is not None:
        found = find_replay(engine, Schedule, owner=owner, key=idempotency_key, digest=digest)
        if found is not None:
            return found, False
    cron = _cron(body.cron, body.timezone)
    _check_template(body.job, owner=owner, settings=settings)
    template = _template(body.job)
    schedule = Schedule(
        id=new_id("sch_"),
        owner_id=owner.id,
        name=body.name,
        cron=cron.expression,
        timezone=cron.timezone,
        job_json=json.dumps(template, sort_keys=True),
        overlap=body.overlap,
        warm_start=body.warm_start,
        paused=body.paused,
        next_due_at=cron.next_after(now),
        idempotency_key=idempotency_key,
        request_hash=digest,
        created_at=now,
        updated_at=now,
    )
    try:
        with write_session(engine) as session:
            session.add(schedule)
    except IntegrityError:
        found = None if idempotency_key is None else find_replay(
            engine, Schedule, owner=owner, key=idempotency_key, digest=digest
        )
        if found is None:
            raise
        return found, False  # a concurrent retry won the race
    return schedule, True


def list_schedules(
    session: Session, *, owner: ApiKey, limit: int, cursor: str | None
) -> tuple[list[Schedule], str | None]:
    """The owner's schedules newest first, ``limit`` at a time, after ``cursor``."""
    query = select(Schedule).where(Schedule.owner_id == owner.id)
    if cursor is not None:
        created, last_id = decode_keyset(cursor)
        query = query.where(
            or_(
                Schedule.created_at < created,
                and_(Schedule.created_at == created, Schedule.id < last_id),
            )
        )
    order = (Schedule.created_at.desc(), Schedule.id.desc())
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor({"created_at": last.created_at.isoformat(), "id": last.id})


def list_runs(
    session: Session, *, schedule_id: str, limit: int, cursor: str | None
) -> tuple[list[ScheduleRun], str | None]:
    """The schedule's runs newest first (skipped and failed ones too), ``limit`` at a time."""
    query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id)
    if cursor is not None:
        query = query.where(ScheduleRun.id < decode_row_id(cursor))
    rows = list(session.scalars(query.order_by(ScheduleRun.id.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor({"id": rows[limit - 1].id})


def update_schedule(
    engine: Engine,
    *,
    schedule_id: str,
    body: ScheduleUpdate,
    owner: ApiKey,
    settings: Settings,
    now: datetime,
) -> Schedule:
    """Apply the fields sent; a new cron or zone, or a resume, starts from the next due time
    after now (a paused stretch is not caught up)."""
    changes = body.model_dump(exclude_unset=True)
    for field in ("name", "cron", "timezone", "job", "overlap", "warm_start", "paused"):
        if field in changes and changes[field] is None:
            raise Problem(
                "validation-error", status=422, detail=f"{field}: null; send a value or leave "
                "the field out", errors=[{"path": f"body.{field}", "message": "may not be null"}],
            )
    with write_session(engine) as session:
        schedule = session.scalars(
            select(Schedule).where(Schedule.id == schedule_id).with_for_update()
        ).one()
        cron = _cron(body.cron or schedule.cron, body.timezone or schedule.timezone)
        if body.job is not None:
            _check_template(body.job, owner=owner, settings=settings)
            schedule.job_json = json.dumps(_template(body.job), sort_keys=True)
            schedule.request_hash = _digest(_template(body.job))
        resumed = body.paused is False and schedule.paused
        retimed = (cron.expression, cron.timezone) != (schedule.cron, schedule.timezone)
        if resumed or retimed:
            schedule.next_due_at = cron.next_after(now)
        schedule.cron, schedule.timezone = cron.expression, cron.timezone
        for field in ("name", "overlap", "warm_start", "paused"):
            if field in changes:
                setattr(schedule, field, changes[field])
        schedule.updated_at = now
        return schedule


def delete_schedule(engine: Engine, *, schedule_id: str) -> None:
    """Delete the schedule and its runs; its jobs stay."""
    with write_session(engine) as session:
        schedule = session.get(Schedule, schedule_id)
        if schedule is not None:
            session.delete(schedule)


def run_now(
    engine: Engine, *, schedule_id: str, settings: Settings, now: datetime
) -> ScheduleRun:
    """Start a run now (whatever the overlap policy and paused state); a run that cannot start
    is recorded as failed and answered 422 run-failed with the reason."""
    with write_session(engine) as session:
        schedule = session.scalars(
            select(Schedule).where(Schedule.id == schedule_id).with_for_update()
        ).one()
        run = fire.start_run(
            session,
            schedule=schedule,
            due_at=now,
            trigger="manual",
            now=now,
            firing=fire.Firing(settings=settings, fired_by=API_FIRED_BY),
        )
    if run.status == "failed":
        raise Problem(
            "run-failed",
            status=422,
            detail=f"schedule {schedule_id}: the run could not start: {run.reason}",
            run_id=run.id,
        )
    return run


def run_public(run: ScheduleRun) -> ScheduleRunPublic:
    """The API's view of a run row."""
    return ScheduleRunPublic(
        id=run.id,
        due_at=run.due_at,
        trigger=run.trigger,  # type: ignore[arg-type]
        status=run.status,  # type: ignore[arg-type]
        job_id=run.job_id,
        warm_start_from=run.warm_start_from,
        reason=run.reason,
        fired_by=run.fired_by,
        created_at=run.created_at,
    )


def schedule_public(session: Session, schedule: Schedule) -> SchedulePublic:
    """The API's view of a schedule: next due time (its zone and UTC), last run, its jobs."""
    cron = Cron(expression=schedule.cron, timezone=schedule.timezone)
    last = session.scalars(
        select(ScheduleRun)
        .where(ScheduleRun.schedule_id == schedule.id)
        .order_by(ScheduleRun.id.desc())
        .limit(1)
    ).first()
    job_ids = list(
        session.scalars(
            select(ScheduleRun.job_id)
            .where(ScheduleRun.schedule_id == schedule.id, ScheduleRun.job_id.is_not(None))
            .order_by(ScheduleRun.id.desc())
            .limit(JOB_IDS_SHOWN)
        )
    )
    due = None if schedule.paused else schedule.next_due_at
    return SchedulePublic(
        id=schedule.id,
        name=schedule.name,
        cron=schedule.cron,
        timezone=schedule.timezone,
        description=cron.describe(),
        job=json.loads(schedule.job_json),
        overlap=schedule.overlap,  # type: ignore[arg-type]
        warm_start=schedule.warm_start,  # type: ignore[arg-type]
        paused=schedule.paused,
        next_run_at=None if due is None else due.astimezone(cron.zone),
        next_run_at_utc=due,
        last_run=None if last is None else run_public(last),
        job_ids=[job_id for job_id in job_ids if job_id is not None],
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )
