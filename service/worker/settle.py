"""When a job ends: ONE rule, applied wherever the end of a trial changes a job's counters.

A job succeeds when ``n_trials`` trials are trained (complete or stopped early), or when its space
is used up (``finished_reason``) and nothing runs; a job whose cancel was asked is cancelled once
nothing runs. Recording a trial (service/worker/record.py) and failing one for good
(service/worker/recovery.py) both end with ``settle_job``, in their own transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Row, select, update

from service.db.tables import Job

__all__ = ["ACTIVE", "JobCounts", "job_counts", "settle_job"]

ACTIVE = ("queued", "running")
# n_complete, n_stopped_early, n_trials, n_running, status, cancel_requested, finished_reason
JobCounts = Row[int, int, int, int, str, bool, str | None]


def job_counts(connection: Connection, *, job_id: str) -> JobCounts:
    """The job's counters and what ``settle_job`` decides on, as they stand in this
    transaction."""
    return connection.execute(
        select(
            Job.n_complete,
            Job.n_stopped_early,
            Job.n_trials,
            Job.n_running,
            Job.status,
            Job.cancel_requested,
            Job.finished_reason,
        ).where(Job.id == job_id)
    ).one()


def settle_job(
    connection: Connection, *, job_id: str, now: datetime, counts: JobCounts | None = None
) -> str:
    """End the job if the rule says so; returns its status. ``counts``: ``job_counts`` already
    read in this transaction (else read here)."""
    counts = counts if counts is not None else job_counts(connection, job_id=job_id)
    status: str = counts.status
    if status not in ACTIVE:
        return status
    trained = counts.n_complete + counts.n_stopped_early
    used_up = counts.finished_reason is not None
    if trained >= counts.n_trials or (used_up and counts.n_running == 0):
        status = "succeeded"
    elif counts.cancel_requested and counts.n_running == 0:
        status = "cancelled"
    else:
        return status
    connection.execute(
        update(Job).where(Job.id == job_id).values(status=status, finished_at=now, updated_at=now)
    )
    return status
