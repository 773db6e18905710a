"""Turning a due time into a run, exactly once: the database decides, not a lock in memory.

``fire_due`` claims a schedule's due time in ONE write transaction: it locks the schedule row
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers), moves
``next_due_at`` forward with a compare-and-set ``UPDATE ... WHERE next_due_at = <the due time
read>``, and inserts the run (and its job) under UNIQUE (schedule_id, due_at, manual). A second
scheduler that read the same due time finds it moved, or hits the unique constraint and rolls
back whole: a due time never produces two jobs, and a crash mid-way produces none and leaves the
due time to the next tick.

A scheduler that was down for several due times fires the LATEST one (trigger ``catch-up``) and
records the earlier ones as skipped ("missed"). A run that cannot start (its dataset is gone, a
limit was lowered, the owner's key was revoked) is recorded as failed with the reason; the
schedule goes on with its next due time.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from service.api.jobs import build_job
from service.api.problems import Problem
from service.api.quotas import check_quotas
from service.api.schemas import JobCreate
from service.db.engine import write_session
from service.db.tables import ApiKey, Job, Schedule, ScheduleRun
from service.scheduler.cron import Cron
from service.scheduler.warm import previous_front
from service.settings import Settings

__all__ = ["MAX_RECORDED_MISSED", "Firing", "fire_due", "start_run"]

MAX_RECORDED_MISSED = 1000  # skipped rows written for one catch-up; older misses are counted
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Firing:
    """Who fires and with what: the service settings (the job rules) and the scheduler's name."""

    settings: Settings
    fired_by: str


def fire_due(engine: Engine, *, schedule_id: str, now: datetime, firing: Firing) -> bool:
    """Handle the schedule's due time(s) up to ``now``; False when there was nothing to claim
    (paused, not due, deleted, or another scheduler claimed it first)."""
    with write_session(engine) as session:
        schedule = session.scalars(
            select(Schedule).where(Schedule.id == schedule_id).with_for_update()
        ).first()
        if schedule is None or schedule.paused or schedule.next_due_at > now:
            return False
        claimed_due = schedule.next_due_at
        cron = Cron.parse(schedule.cron, schedule.timezone)
        missed: deque[datetime] = deque(maxlen=MAX_RECORDED_MISSED)
        n_missed, due, next_due = 0, claimed_due, None
        for later in cron.times_after(claimed_due):
            if later > now:
                next_due = later
                break
            missed.append(due)
            n_missed, due = n_missed + 1, later
        if next_due is None:
            next_due = cron.next_after(now)  # unreachable for a valid cron: raises CronError
        moved = session.execute(
            update(Schedule)
            .where(Schedule.id == schedule_id, Schedule.next_due_at == claimed_due)
            .values(next_due_at=next_due, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return False  # another scheduler moved it between our read and our update
        for when in missed:
            session.add(
                ScheduleRun(
                    schedule_id=schedule_id,
                    due_at=when,
                    trigger="cron",
                    status="skipped",
                    reason=f"missed: no scheduler ran at this due time; the catch-up run of "
                    f"{due.isoformat()} ran instead",
                    fired_by=firing.fired_by,
                    created_at=now,
                )
            )
        run = start_run(
            session,
            schedule=schedule,
            due_at=due,
            trigger="catch-up" if n_missed else "cron",
            now=now,
            firing=firing,
        )
        if n_missed > len(missed):
            earlier = n_missed - len(missed)
            run.reason = f"{run.reason + '; ' if run.reason else ''}{earlier} earlier missed " \
                "due times are not listed"
        return True


def start_run(
    session: Session,
    *,
    schedule: Schedule,
    due_at: datetime,
    trigger: str,
    now: datetime,
    firing: Firing,
) -> ScheduleRun:
    """Record the run of ``due_at`` in ``session``: started (with its new queued job), skipped
    (overlap) or failed (the reason); ``trigger`` ``manual`` runs whatever the overlap."""
    run = ScheduleRun(
        schedule_id=schedule.id,
        due_at=due_at,
        manual=trigger == "manual",
        trigger=trigger,
        fired_by=firing.fired_by,
        created_at=now,
    )
    active = _active_job(session, schedule) if trigger != "manual" else None
    if active is not None and schedule.overlap == "skip":
        run.status = "skipped"
        run.reason = f"overlap: the previous run's job {active.id} is still {active.status} " \
            "(overlap=skip)"
    else:
        try:
            job = _new_job(session, schedule=schedule, firing=firing, run=run)
        except _CannotStart as error:
            run.status, run.reason = "failed", str(error)
        else:
            session.add(job)
            session.flush()  # the job row before the run that points at it
            run.status, run.job_id = "started", job.id
    session.add(run)
    session.flush()
    return run


class _CannotStart(Exception):
    """The template cannot become a job now; the message is the run's reason."""


def _active_job(session: Session, schedule: Schedule) -> Job | None:
    return session.scalars(
        select(Job)
        .join(ScheduleRun, ScheduleRun.job_id == Job.id)
        .where(ScheduleRun.schedule_id == schedule.id, Job.status.in_(ACTIVE))
        .order_by(ScheduleRun.id.desc())
        .limit(1)
    ).first()


def _new_job(session: Session, *, schedule: Schedule, firing: Firing, run: ScheduleRun) -> Job:
    owner = session.get(ApiKey, schedule.owner_id)
    if owner is None or owner.revoked_at is not None:
        raise _CannotStart("the owner's API key was revoked; create the schedule with a live key")
    try:
        body = JobCreate.model_validate(json.loads(schedule.job_json))
        job = build_job(body, owner=owner, settings=firing.settings, digest=schedule.request_hash)
        if schedule.warm_start == "front":
            warm = previous_front(session, schedule_id=schedule.id, config_json=job.config_json)
            if warm.params:
                job = build_job(
                    body,
                    owner=owner,
                    settings=firing.settings,
                    digest=schedule.request_hash,
                    warm_start=warm.params,
                )
                run.warm_start_from = warm.job_id
        # The owner's quotas hold for scheduled jobs too (overlap=queue could pass them).
        check_quotas(session, owner_id=owner.id, n_trials=job.n_trials, settings=firing.settings)
    except Problem as problem:
        raise _CannotStart(f"{problem.slug}: {problem.detail}") from None
    except ValidationError as error:
        raise _CannotStart(f"the job template no longer validates: {error}") from None
    return job
