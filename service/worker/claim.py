"""Claim work: pick a job with room, ask its Optuna study for a trial, insert the trial row.

A job has room when it is queued or running, not being cancelled, not used up (no
``finished_reason``), its running + complete + stopped-early trials are below ``n_trials`` and
its running trials below ``parallelism``. Duplicates and refusals that ``next_trial`` settles on
the way are written as finished rows in the same transaction (``service.worker.skipped``).
The choice and the insert happen in one transaction that holds the job: ``SELECT ... FOR UPDATE
SKIP LOCKED`` on PostgreSQL (a worker never waits on a job another worker is claiming from; it
takes the next one), ``BEGIN IMMEDIATE`` on SQLite (one writer at a time). So two workers never
push a job past its parallelism or its budget.

Fair across owners: among the jobs with room, the one whose OWNER has the fewest trials running
(over all that owner's jobs) goes first, then the oldest. One owner's long or wide job therefore
cannot hold every worker while another owner's job waits: the next free worker serves the owner
with less running. (FOR UPDATE SKIP LOCKED locks only the chosen job row; the count per owner is
read, not locked.)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, func, insert, select, update
from sqlalchemy.orm import aliased

from search import engine as search_engine
from search.engine import TrialTicket
from search.errors import SearchError
from service.db.claimable import takes_claims, trials_to_hand_out
from service.db.tables import Job, Trial
from service.worker.backoff import is_transient
from service.worker.context import JobContext, WorkerContext
from service.worker.database import is_postgres, utcnow, write_transaction
from service.worker.recovery import match_retry
from service.worker.skipped import end_used_up, insert_skipped

__all__ = ["Claim", "claim_next"]

log = logging.getLogger("paretonas.worker")


@dataclass(frozen=True)
class Claim:
    """A trial this worker now holds under a lease."""

    trial_id: int
    number: int
    attempt: int
    retry_of: int | None
    ticket: TrialTicket
    job: JobContext


def claim_next(ctx: WorkerContext, *, fits: ColumnElement[bool] | None = None) -> Claim | None:
    """Claim one trial from the job with room (and that ``fits``) whose owner runs the fewest
    trials (then the oldest); None when no job has room.

    ``fits``: a further condition on the job row (the Ray driver: its per-trial resources fit the
    cluster's free ones). The job's config, study and dataset are prepared before the job is
    locked (once per job and process), so the lock is held only for ``ask`` and two small writes.
    """
    with ctx.engine.connect() as connection:
        candidate = connection.execute(_job_with_room(fits=fits)).one_or_none()
        connection.rollback()
    if candidate is None or _prepare(ctx, candidate) is None:
        return None
    with write_transaction(ctx.engine) as connection:
        job = connection.execute(
            _job_with_room(lock=is_postgres(connection), fits=fits)
        ).one_or_none()
        if job is None:
            return None
        job_context = _prepare(ctx, job, connection=connection)
        if job_context is None:
            return None
        try:
            found = search_engine.next_trial(ref=job_context.ref, config=job_context.config)
        except Exception as error:
            if is_transient(error):
                raise
            # The same job would come first again and raise again: every worker would retry it
            # forever while the other jobs wait. It is this job's error: fail the job.
            detail = " ".join(f"{type(error).__name__}: {error}".split())[:500]
            _fail_job(connection, job_id=job_context.job_id,
                      message=f"the search could not propose a trial ({detail})")
            return None
        now = utcnow()
        insert_skipped(connection, job_id=job_context.job_id, tickets=found.skipped, now=now)
        if found.ticket is None:
            end_used_up(connection, job_id=job_context.job_id,
                        reason=found.finished or "nothing left to try", now=now)
            return None
        ticket = found.ticket
        try:
            return _insert_claim(connection, ctx=ctx, job=job_context, ticket=ticket)
        except BaseException:
            search_engine.fail(
                ref=job_context.ref, number=ticket.number, reason="claim was not recorded"
            )
            raise


def _prepare(
    ctx: WorkerContext, job: Row[*tuple[Any, ...]], *, connection: Connection | None = None
) -> JobContext | None:
    """The job's context; a job whose stored config is refused is failed (None).

    ``connection``: the open write transaction to fail it in (else a transaction of its own).
    """
    try:
        return ctx.job_context(
            job_id=job.id,
            dataset=job.dataset,
            study_name=job.study_name,
            config_json=job.config_json,
            reference_point_json=job.reference_point_json,
            n_trials=job.n_trials,
        )
    except SearchError as error:
        message = f"config_json: {error}"
        if connection is not None:
            _fail_job(connection, job_id=job.id, message=message)
        else:
            with write_transaction(ctx.engine) as own:
                _fail_job(own, job_id=job.id, message=message)
        return None


def _job_with_room(
    *, lock: bool = False, fits: ColumnElement[bool] | None = None
) -> Select[*tuple[Any, ...]]:
    """The job with room (and that ``fits``) whose owner runs the fewest trials, oldest first
    among equals; ``lock``: FOR UPDATE SKIP LOCKED (PostgreSQL)."""
    other = aliased(Job)
    owner_running = (
        select(func.coalesce(func.sum(other.n_running), 0))
        .where(other.owner_id == Job.owner_id, other.status == "running")
        .correlate(Job)
        .scalar_subquery()
    )
    query = (
        select(
            Job.id,
            Job.dataset,
            Job.study_name,
            Job.config_json,
            Job.reference_point_json,
            Job.n_trials,
        )
        .where(
            takes_claims(),
            trials_to_hand_out() > 0,
            Job.n_running < Job.parallelism,
        )
        .order_by(owner_running, Job.created_at, Job.id)
        .limit(1)
    )
    if fits is not None:
        query = query.where(fits)
    return query.with_for_update(skip_locked=True, of=Job) if lock else query


def _insert_claim(
    connection: Connection, *, ctx: WorkerContext, job: JobContext, ticket: TrialTicket
) -> Claim:
    now = utcnow()
    retry_of, attempt = match_retry(connection, job_id=job.job_id, params=dict(ticket.params))
    trial_id = connection.execute(
        insert(Trial)
        .values(
            job_id=job.job_id,
            number=ticket.number,
            attempt=attempt,
            retry_of=retry_of,
            state="running",
            params_json=json.dumps(ticket.params, sort_keys=True),
            spec_json=ticket.spec_json,
            worker_id=ctx.worker_id,
            lease_expires_at=now + timedelta(seconds=ctx.lease_seconds),
            heartbeat_at=now,
            started_at=now,
        )
        .returning(Trial.id)
    ).scalar_one()
    connection.execute(
        update(Job)
        .where(Job.id == job.job_id)
        .values(
            n_running=Job.n_running + 1,
            status="running",
            started_at=func.coalesce(Job.started_at, now),
            updated_at=now,
        )
    )
    return Claim(
        trial_id=trial_id,
        number=ticket.number,
        attempt=attempt,
        retry_of=retry_of,
        ticket=ticket,
        job=job,
    )


def _fail_job(connection: Connection, *, job_id: str, message: str) -> None:
    now = utcnow()
    connection.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status="failed", error=message, finished_at=now, updated_at=now)
    )
    log.error("job %s failed: %s", job_id, message)
