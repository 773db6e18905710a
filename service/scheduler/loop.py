"""The scheduler loop: every ``poll_seconds``, fire each due schedule (``fire.fire_due``).

Runs as ``paretonas scheduler`` or as a thread of ``paretonas serve``. Any number of them may
share one database: each due time is claimed in the database, so the loop keeps no state between
ticks. A database that goes away costs a logged tick, not the loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError

from service.db.engine import read_session
from service.db.tables import Schedule
from service.scheduler.clock import Clock, system_clock
from service.scheduler.fire import Firing, fire_due
from service.settings import Settings

__all__ = ["Scheduler", "default_name"]

log = logging.getLogger("paretonas.scheduler")
BATCH = 100  # schedules handled per tick at most (the oldest due first)


def default_name() -> str:
    """``host:pid``: what ``fired_by`` of a run shows."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduler:
    """Fires the due schedules of ``engine`` at ``clock()``; ``run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        name: str | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.firing = Firing(settings=settings, fired_by=name or default_name())
        self.poll_seconds = poll_seconds or settings.scheduler_poll_seconds

    def due(self) -> list[str]:
        """Ids of the unpaused schedules due at the clock's now, oldest due first."""
        with read_session(self.engine) as session:
            return list(
                session.scalars(
                    select(Schedule.id)
                    .where(Schedule.paused.is_(False), Schedule.next_due_at <= self.clock())
                    .order_by(Schedule.next_due_at, Schedule.id)
                    .limit(BATCH)
                )
            )

    def tick(self) -> int:
        """Fire what is due now; the number of schedules this process fired."""
        fired = 0
        for schedule_id in self.due():
            try:
                fired += fire_due(
                    self.engine, schedule_id=schedule_id, now=self.clock(), firing=self.firing
                )
            except IntegrityError:  # another scheduler recorded this due time first
                log.info("schedule %s: due time already recorded by another scheduler", schedule_id)
            except OperationalError:
                raise
            except Exception:  # one broken schedule must not hold up the others' due times
                log.exception("schedule %s: firing failed; retried next tick", schedule_id)
        return fired

    def run(self, stop: threading.Event) -> None:
        """Tick every ``poll_seconds`` until ``stop`` is set."""
        log.info("scheduler %s: polling every %ss", self.firing.fired_by, self.poll_seconds)
        while not stop.is_set():
            try:
                self.tick()
            except OperationalError as error:
                log.warning("scheduler: database unavailable (%s); retrying", error.orig)
            stop.wait(self.poll_seconds)
