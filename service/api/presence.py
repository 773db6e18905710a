"""Who is working: the ``workers`` table read for ``/readyz``, ``/metrics`` and job warnings.

A worker is *live* when it has not stopped and was seen within ``worker_stale_seconds``; otherwise
it is *stale* (killed, cut off, or hung) or *stopped* (exited cleanly). With no live worker, queued
jobs wait silently; ``warning()`` is the sentence the API puts on such a job:
"no worker has been seen for N s ...".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from service.db.base import utcnow
from service.db.engine import read_session
from service.db.tables import Worker
from service.settings import Settings

__all__ = ["Presence", "WorkerSeen", "read_presence", "worker_warning"]

LISTED = 100  # /readyz lists at most this many workers, most recently seen first


@dataclass(frozen=True)
class WorkerSeen:
    """One worker's row as the API shows it."""

    id: str
    hostname: str
    device: str
    state: str  # live | stale | stopped
    started_at: datetime
    last_seen_at: datetime
    seconds_since_seen: float
    job_id: str | None
    trial_number: int | None


@dataclass(frozen=True)
class Presence:
    """The workers seen, and how long ago the last one was."""

    workers: tuple[WorkerSeen, ...]
    stale_after_seconds: float
    now: datetime

    @property
    def live(self) -> int:
        """How many workers are live."""
        return sum(1 for worker in self.workers if worker.state == "live")

    @property
    def last_seen_at(self) -> datetime | None:
        """When any worker was last seen (None: never)."""
        return max((w.last_seen_at for w in self.workers), default=None)

    def warning(self) -> str | None:
        """None with a live worker; else the sentence a waiting job shows."""
        if self.live:
            return None
        last = self.last_seen_at
        if last is None:
            return (
                "no worker has been seen yet; trials run only while a worker runs: start one "
                "with `paretonas worker` (or `paretonas serve --workers N`)"
            )
        seconds = int((self.now - last).total_seconds())
        return (
            f"no worker has been seen for {seconds} s; trials run only while a worker runs: "
            "start one with `paretonas worker` (or `paretonas serve --workers N`)"
        )


def read_presence(
    source: Session | Connection, *, stale_after_seconds: float, limit: int = LISTED
) -> Presence:
    """The most recently seen workers (at most ``limit``), each live, stale or stopped."""
    now = utcnow()
    records = source.execute(
        select(
            Worker.id,
            Worker.hostname,
            Worker.device,
            Worker.started_at,
            Worker.last_seen_at,
            Worker.stopped_at,
            Worker.job_id,
            Worker.trial_number,
        )
        .order_by(Worker.last_seen_at.desc(), Worker.id)
        .limit(limit)
    ).all()
    seen = []
    for row in records:
        ago = max(0.0, (now - row.last_seen_at).total_seconds())
        state = (
            "stopped" if row.stopped_at is not None
            else "live" if ago <= stale_after_seconds
            else "stale"
        )
        seen.append(
            WorkerSeen(
                id=row.id,
                hostname=row.hostname,
                device=row.device,
                state=state,
                started_at=row.started_at,
                last_seen_at=row.last_seen_at,
                seconds_since_seen=round(ago, 1),
                job_id=row.job_id,
                trial_number=row.trial_number,
            )
        )
    return Presence(workers=tuple(seen), stale_after_seconds=stale_after_seconds, now=now)


def worker_warning(source: Session | Engine, *, settings: Settings) -> str | None:
    """The "no worker has been seen for N s" sentence, or None while a worker is live."""
    if isinstance(source, Engine):
        with read_session(source) as session:
            return worker_warning(session, settings=settings)
    return read_presence(source, stale_after_seconds=settings.worker_stale_seconds).warning()
