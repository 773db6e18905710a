"""Per-key quotas, checked in the transaction that stores a new job (429 with Retry-After).

- trials queued or running: the unfinished trials (n_trials - complete) of the key's queued and
  running jobs, plus the new job's, at most ``limits.max_active_trials_per_key``;
- jobs per day: jobs the key submitted in the last 24 hours, at most ``limits.max_jobs_per_day``;
  Retry-After is when the oldest of them leaves the window.

The key's row is locked first (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction already
holds the one write lock), so concurrent submissions of one key are counted one after the other
and never pass a quota together.
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.api.problems import Problem
from service.db.base import utcnow
from service.db.tables import ApiKey, Job
from service.settings import Settings

__all__ = ["DAY", "check_quotas"]

DAY = timedelta(days=1)


def check_quotas(session: Session, *, owner_id: int, n_trials: int, settings: Settings) -> None:
    """Raise 429 quota-exceeded when a new job of ``n_trials`` would pass a quota of the key."""
    limits = settings.limits
    session.execute(select(ApiKey.id).where(ApiKey.id == owner_id).with_for_update())
    active = session.scalar(
        select(func.coalesce(func.sum(Job.n_trials - Job.n_complete), 0)).where(
            Job.owner_id == owner_id, Job.status.in_(("queued", "running"))
        )
    )
    active = int(active or 0)
    if active + n_trials > limits.max_active_trials_per_key:
        retry = str(limits.quota_retry_after_seconds)
        raise Problem(
            "quota-exceeded",
            status=429,
            detail=f"n_trials: got {n_trials} with {active} trials of this key already queued or "
            f"running; a key may have at most {limits.max_active_trials_per_key} (wait for jobs "
            "to finish or cancel some; operators raise "
            "PARETONAS_LIMITS__MAX_ACTIVE_TRIALS_PER_KEY)",
            headers={"Retry-After": retry},
            path="n_trials",
            limit=limits.max_active_trials_per_key,
            setting="PARETONAS_LIMITS__MAX_ACTIVE_TRIALS_PER_KEY",
        )
    now = utcnow()
    recent = select(Job.created_at).where(Job.owner_id == owner_id, Job.created_at > now - DAY)
    count = session.scalar(select(func.count()).select_from(recent.subquery())) or 0
    if count >= limits.max_jobs_per_day:
        oldest = session.scalar(recent.order_by(Job.created_at).limit(1))
        wait = (oldest + DAY - now).total_seconds() if oldest is not None else 60.0
        retry = str(max(1, math.ceil(wait)))
        raise Problem(
            "quota-exceeded",
            status=429,
            detail=f"this key submitted {count} jobs in the last 24 hours; at most "
            f"{limits.max_jobs_per_day} allowed (retry after {retry} s; operators raise "
            "PARETONAS_LIMITS__MAX_JOBS_PER_DAY)",
            headers={"Retry-After": retry},
            limit=limits.max_jobs_per_day,
            setting="PARETONAS_LIMITS__MAX_JOBS_PER_DAY",
        )
