"""The retry/failure policy: a lost, released or crashed trial is failed and run again.

- A trial whose lease expired (its worker was killed or cut off) is marked ``failed``, failed in its
  Optuna study (``search.engine.fail``) and retried (``search.engine.retry`` enqueues the same
  parameters; the next claim of that job gets them as a new trial number with ``attempt + 1`` and
  ``retry_of`` = the lost number).
- A trial that already used ``max_trial_retries`` retries fails its job instead, with an error that
  names the trial and its attempts.
- A trial released on SIGTERM is retried at once, whatever its attempt: a deploy is not the trial's
  fault, and nothing waits for the lease to expire.
- A trial stopped by the per-trial wall-time limit is failed and never retried (the same
  parameters would only run out of time again); the job goes on with new trials, unless more than
  ``max_trial_retries`` of its trials ran out of time, which fails the job.

Optuna is told first, then the service transaction commits: if the commit is lost, the next reaper
finds the same expired row again (the worst case is one extra enqueued copy of the parameters, run
as an ordinary trial), never a trial that is neither running nor retried.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from search import engine as search_engine
from search.engine import StudyRef
from service.db.tables import Job, Trial
from service.logs import trial_fields
from service.worker.context import WorkerContext
from service.worker.database import is_postgres, utcnow, write_transaction
from service.worker.reasons import LEASE_EXPIRED, RELEASED, TIMED_OUT
from service.worker.settle import settle_job

__all__ = [
    "LostTrial",
    "fail_and_retry",
    "find_expired",
    "lock_job",
    "match_retry",
    "reap_expired",
    "settle_cancelled",
    "timed_out_reason",
]

log = logging.getLogger("paretonas.worker")


@dataclass(frozen=True)
class LostTrial:
    """A running trial row to fail: its ids, attempt, and why it is being failed."""

    trial_id: int
    job_id: str
    number: int
    attempt: int
    reason: str


def find_expired(connection: Connection, *, now: datetime) -> list[LostTrial]:
    """Running trials whose lease ran out before ``now`` (no lock; rechecked under the job lock)."""
    rows = connection.execute(
        select(Trial.id, Trial.job_id, Trial.number, Trial.attempt, Trial.worker_id)
        .where(Trial.state == "running", Trial.lease_expires_at < now)
        .order_by(Trial.job_id, Trial.number)
    ).all()
    return [
        LostTrial(
            trial_id=row.id,
            job_id=row.job_id,
            number=row.number,
            attempt=row.attempt,
            reason=f"{LEASE_EXPIRED}: worker {row.worker_id} stopped renewing it",
        )
        for row in rows
    ]


def reap_expired(ctx: WorkerContext) -> int:
    """Fail and retry every trial whose lease expired; returns how many were reaped.

    One transaction per job; on PostgreSQL a job another worker holds is skipped (SKIP LOCKED) and
    reaped on a later pass.
    """
    with ctx.engine.connect() as connection:
        lost = find_expired(connection, now=utcnow())
        connection.rollback()
    reaped = 0
    for job_id in dict.fromkeys(trial.job_id for trial in lost):
        with write_transaction(ctx.engine) as connection:
            job = lock_job(connection, job_id=job_id, skip_locked=True)
            if job is None:
                continue
            ref = StudyRef(storage_url=ctx.optuna_storage, study_name=job.study_name)
            for trial in find_expired(connection, now=utcnow()):
                if trial.job_id == job_id:
                    fail_and_retry(connection, ctx=ctx, ref=ref, trial=trial, always_retry=False)
                    reaped += 1
    return reaped


def settle_cancelled(ctx: WorkerContext) -> int:
    """End running jobs whose cancel was asked while none of their trials ran; returns how many.

    (A cancel that finds a trial running is ended by that trial's worker when it stops.)
    """
    now = utcnow()
    with write_transaction(ctx.engine) as connection:
        result = connection.execute(
            update(Job)
            .where(Job.status == "running", Job.cancel_requested.is_(True), Job.n_running == 0)
            .values(status="cancelled", finished_at=now, updated_at=now)
        )
    return int(result.rowcount)


def lock_job(
    connection: Connection, *, job_id: str, skip_locked: bool = False
) -> Row[*tuple[Any, ...]] | None:
    """The job row, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite: the file)."""
    query = select(Job.id, Job.status, Job.study_name, Job.n_trials, Job.cancel_requested).where(
        Job.id == job_id
    )
    if is_postgres(connection):
        query = query.with_for_update(skip_locked=skip_locked)
    return connection.execute(query).one_or_none()


def fail_and_retry(
    connection: Connection,
    *,
    ctx: WorkerContext,
    ref: StudyRef,
    trial: LostTrial,
    always_retry: bool,
    never_retry: bool = False,
) -> bool:
    """Mark ``trial`` failed (only if it is still running) and retry it or fail its job.

    ``never_retry``: a trial out of wall time, failed for good (see the module docstring). Call
    with the job row locked. Returns False when the row was no longer running (someone else
    already handled it), True otherwise.
    """
    now = utcnow()
    result = connection.execute(
        update(Trial)
        .where(Trial.id == trial.trial_id, Trial.state == "running")
        .values(state="failed", error=trial.reason, finished_at=now, lease_expires_at=None)
    )
    if result.rowcount != 1:
        return False
    connection.execute(
        update(Job)
        .where(Job.id == trial.job_id)
        .values(n_running=Job.n_running - 1, n_failed=Job.n_failed + 1, updated_at=now)
    )
    search_engine.fail(ref=ref, number=trial.number, reason=trial.reason)
    if never_retry:
        _fail_job_after_timeouts(connection, ctx=ctx, trial=trial, now=now)
        settle_job(connection, job_id=trial.job_id, now=now)  # its last trial may be this one
        return True
    chain = _attempt_chain(connection, job_id=trial.job_id, number=trial.number)
    faults = _faults(connection, job_id=trial.job_id, chain=chain)
    if always_retry or faults <= ctx.max_trial_retries:
        search_engine.retry(ref=ref, number=trial.number)
        # A job whose space was used up while this trial ran waits for nothing else: with the
        # retry queued it has a trial to run again (else no claim would take the retry, and the
        # job would stay running with nothing running).
        connection.execute(update(Job).where(Job.id == trial.job_id).values(finished_reason=None))
        log.warning(
            "job %s trial %d (attempt %d) failed: %s; retrying",
            trial.job_id,
            trial.number,
            trial.attempt,
            trial.reason,
            extra=trial_fields(trial.job_id, trial.number),
        )
        return True
    released = len(chain) - faults
    releases = f"; {released} released on shutdown" if released else ""
    message = (
        f"trial {chain[0]} failed on all {len(chain)} attempts (as trial numbers "
        f"{', '.join(map(str, chain))}{releases}; max_trial_retries={ctx.max_trial_retries}); "
        f"last error: {trial.reason}. Raise PARETONAS_MAX_TRIAL_RETRIES or fix the cause, "
        "then submit the search again"
    )
    connection.execute(
        update(Job)
        .where(Job.id == trial.job_id, Job.status.in_(("queued", "running")))
        .values(status="failed", error=message, finished_at=now, updated_at=now)
    )
    log.error("job %s failed: %s", trial.job_id, message,
              extra=trial_fields(trial.job_id, trial.number))
    return True


def timed_out_reason(*, limit: float, seconds: float, epochs: str) -> str:
    """The error a trial stopped by the wall-time limit is failed with."""
    return (
        f"{TIMED_OUT} of {limit:g} s (PARETONAS_TRIAL_MAX_SECONDS): stopped after {seconds:.1f} s "
        f"at epoch {epochs}; not retried"
    )


def _fail_job_after_timeouts(
    connection: Connection, *, ctx: WorkerContext, trial: LostTrial, now: datetime
) -> None:
    timed_out = connection.execute(
        select(func.count())
        .select_from(Trial)
        .where(Trial.job_id == trial.job_id, Trial.error.startswith(TIMED_OUT))
    ).scalar_one()
    fields = trial_fields(trial.job_id, trial.number)
    log.warning("job %s trial %d failed: %s", trial.job_id, trial.number, trial.reason,
                extra=fields)
    if timed_out <= ctx.max_trial_retries:
        return
    message = (
        f"{timed_out} trials {TIMED_OUT} (more than max_trial_retries={ctx.max_trial_retries}); "
        "give the trials a smaller budget (train.epochs, batch size, space) or raise "
        "PARETONAS_TRIAL_MAX_SECONDS, then submit the search again"
    )
    connection.execute(
        update(Job)
        .where(Job.id == trial.job_id, Job.status.in_(("queued", "running")))
        .values(status="failed", error=message, finished_at=now, updated_at=now)
    )
    log.error("job %s failed: %s", trial.job_id, message, extra=fields)


def _faults(connection: Connection, *, job_id: str, chain: list[int]) -> int:
    """Failed attempts of the chain that were the trial's fault (a release on shutdown is not:
    a worker that restarts three times must not use up a trial's retries)."""
    return int(connection.execute(
        select(func.count()).select_from(Trial).where(
            Trial.job_id == job_id, Trial.number.in_(chain), Trial.state == "failed",
            ~func.coalesce(Trial.error, "").startswith(RELEASED),
        )
    ).scalar_one())


def _attempt_chain(connection: Connection, *, job_id: str, number: int) -> list[int]:
    """Trial numbers of every attempt of one trial, first attempt first."""
    chain = [number]
    while True:
        previous = connection.execute(
            select(Trial.retry_of).where(Trial.job_id == job_id, Trial.number == chain[0])
        ).scalar_one_or_none()
        if previous is None:
            return chain
        chain.insert(0, previous)


def match_retry(
    connection: Connection, *, job_id: str, params: dict[str, object]
) -> tuple[int | None, int]:
    """(retry_of, attempt) for a freshly asked trial: which failed trial's parameters it re-runs.

    ``search.engine.retry`` enqueues a failed trial's parameters, so the next ``ask`` returns them.
    A failed row with no retry yet and the same parameters is the one being retried (oldest first);
    anything else is a fresh trial (attempt 0).
    """
    retried = select(Trial.retry_of).where(Trial.job_id == job_id, Trial.retry_of.is_not(None))
    rows = connection.execute(
        select(Trial.number, Trial.attempt, Trial.params_json)
        .where(Trial.job_id == job_id, Trial.state == "failed", Trial.number.not_in(retried))
        .order_by(Trial.number)
    ).all()
    for row in rows:
        if json.loads(row.params_json) == params:
            return row.number, row.attempt + 1
    return None, 0
