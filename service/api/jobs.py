"""Job use cases below the routes: create (idempotent), list (keyset pages), cancel, show.

The search config is validated by ``search.config.parse_config`` and stored whole
(``config.to_dict()``) with the job; the hypervolume reference point is computed once here
(``search.engine.reference_point``), so the API and every worker agree on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.api.admission import validate_job
from service.api.idempotency import find_replay
from service.api.pagination import decode_keyset, encode_cursor
from service.api.problems import Problem
from service.api.quotas import check_quotas
from service.api.schemas import (
    DEFAULT_CPUS_PER_TRIAL,
    DEFAULT_GPUS_PER_TRIAL,
    JobCreate,
    JobPublic,
    TrialCounts,
)
from service.db.base import utcnow
from service.db.engine import write_session
from service.db.tables import ApiKey, Job
from service.settings import Settings

__all__ = [
    "build_job",
    "cancel_job",
    "create_job",
    "job_public",
    "list_jobs",
    "new_id",
    "new_job_id",
    "request_hash",
]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str) -> str:
    """``prefix`` + a 26-character ULID (48-bit milliseconds, 80 random bits, Crockford base32)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = [_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26))]
    return prefix + "".join(chars)


def new_job_id() -> str:
    """``job_`` + a ULID."""
    return new_id("job_")


def request_hash(body: JobCreate) -> str:
    """sha256 of the body's fields as sent (canonical JSON): what "the same body" means."""
    canonical = json.dumps(body.model_dump(mode="json", exclude_unset=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_job(
    body: JobCreate,
    *,
    owner: ApiKey,
    settings: Settings,
    digest: str,
    warm_start: Sequence[Mapping[str, Any]] = (),
) -> Job:
    """The queued job row of ``body`` (not stored), checked by ``validate_job`` (THE validation
    of a job: dataset, search config, limits), as POST /jobs and every schedule run apply it;
    Problem (422) otherwise. ``warm_start``: parameter dicts the study runs first (a schedule's
    previous front)."""
    valid = validate_job(body, settings=settings, warm_start=warm_start)
    job_id = new_job_id()
    now = utcnow()
    return Job(
        id=job_id,
        owner_id=owner.id,
        status="queued",
        dataset=body.dataset,
        config_json=json.dumps(valid.config.to_dict(), sort_keys=True),
        n_trials=valid.config.n_trials,
        parallelism=valid.parallelism,
        gpus_per_trial=_or(body.gpus_per_trial, DEFAULT_GPUS_PER_TRIAL),
        cpus_per_trial=_or(body.cpus_per_trial, DEFAULT_CPUS_PER_TRIAL),
        study_name=f"paretonas-{job_id}",
        idempotency_key=None,
        request_hash=digest,
        reference_point_json=json.dumps(valid.reference_point),
        created_at=now,
        updated_at=now,
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def create_job(
    engine: Engine,
    *,
    body: JobCreate,
    owner: ApiKey,
    settings: Settings,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """Store a queued job; (job, created). A replay with the same key and body returns the
    stored job (created False); the same key with another body is 409 idempotency-conflict."""
    digest = request_hash(body)
    if idempotency_key is not None:
        found = find_replay(engine, Job, owner=owner, key=idempotency_key, digest=digest)
        if found is not None:
            return found, False
    job = build_job(body, owner=owner, settings=settings, digest=digest)
    job.idempotency_key = idempotency_key
    try:
        with write_session(engine) as session:
            check_quotas(session, owner_id=owner.id, n_trials=job.n_trials, settings=settings)
            session.add(job)
    except IntegrityError:
        if idempotency_key is None:
            raise
        found = find_replay(engine, Job, owner=owner, key=idempotency_key, digest=digest)
        if found is None:
            raise
        return found, False  # a concurrent retry won the race
    return job, True


def list_jobs(
    session: Session,
    *,
    owner: ApiKey,
    limit: int,
    cursor: str | None,
    status: str | None,
) -> tuple[list[Job], str | None]:
    """The owner's jobs newest first, ``limit`` at a time, after ``cursor``."""
    query = select(Job).where(Job.owner_id == owner.id)
    if status is not None:
        query = query.where(Job.status == status)
    if cursor is not None:
        created, last_id = decode_keyset(cursor)
        query = query.where(
            or_(
                Job.created_at < created,
                and_(Job.created_at == created, Job.id < last_id),
            )
        )
    rows = list(
        session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor({"created_at": last.created_at.isoformat(), "id": last.id})


def cancel_job(engine: Engine, *, job_id: str) -> Job:
    """queued: cancelled at once; running: cancel_requested (workers stop within an epoch);
    finished: 409 job-finished."""
    with write_session(engine) as session:
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one()
        now = utcnow()
        if job.status == "queued":
            job.status, job.finished_at = "cancelled", now
            job.cancel_requested, job.updated_at = True, now
        elif job.status == "running":
            job.cancel_requested, job.updated_at = True, now
        else:
            raise Problem(
                "job-finished",
                status=409,
                detail=f"job {job_id} already {job.status}; only queued or running jobs cancel",
                job_status=job.status,
            )
        return job


def job_public(job: Job, *, warning: str | None = None) -> JobPublic:
    """The API's view of a job row; ``warning`` (no live worker) only on an active job."""
    return JobPublic(
        warning=warning if job.status in ("queued", "running") else None,
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        dataset=job.dataset,
        n_trials=job.n_trials,
        parallelism=job.parallelism,
        gpus_per_trial=job.gpus_per_trial,
        cpus_per_trial=job.cpus_per_trial,
        cancel_requested=job.cancel_requested,
        trials=TrialCounts(
            running=job.n_running, complete=job.n_complete, failed=job.n_failed,
            stopped_early=job.n_stopped_early, skipped=job.n_skipped,
        ),
        front_size=job.front_size,
        hypervolume=job.hypervolume,
        reference_point=json.loads(job.reference_point_json),
        error=job.error,
        finished_reason=job.finished_reason,
        config=json.loads(job.config_json),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
    )
