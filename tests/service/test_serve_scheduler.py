"""`paretonas serve` runs the scheduler in a thread unless PARETONAS_SCHEDULER_ENABLED=false."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from service.commands.serve import start_scheduler
from service.db.base import utcnow
from service.db.engine import read_session, write_session
from service.db.tables import Schedule, ScheduleRun
from service.settings import Settings


def _due_schedule(client: TestClient, auth: dict[str, str], engine: Engine) -> str:
    body = {"name": "n", "cron": "0 0 1 1 *", "job": {"dataset": "digits", "n_trials": 2}}
    schedule_id = str(client.post("/api/v1/schedules", json=body, headers=auth).json()["id"])
    with write_session(engine) as session:  # make it due a minute ago
        session.execute(
            update(Schedule).values(next_due_at=utcnow() - timedelta(minutes=1))
        )
    return schedule_id


def _runs(engine: Engine) -> list[ScheduleRun]:
    with read_session(engine) as session:
        return list(session.scalars(select(ScheduleRun)))


def _settings(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"scheduler_poll_seconds": 0.05, **changes})


def test_serve_scheduler_thread_fires_and_stops(
    client: TestClient, auth: dict[str, str], db_engine: Engine, settings: Settings
) -> None:
    _due_schedule(client, auth, db_engine)
    stop: Callable[[], None] = start_scheduler(_settings(settings))
    assert "scheduler" in {thread.name for thread in threading.enumerate()}
    try:
        deadline = time.monotonic() + 30
        while not _runs(db_engine) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop()
    assert "scheduler" not in {thread.name for thread in threading.enumerate()}
    assert [(r.trigger, r.status) for r in _runs(db_engine)] == [("cron", "started")]


def test_serve_without_scheduler(
    client: TestClient, auth: dict[str, str], db_engine: Engine, settings: Settings
) -> None:
    _due_schedule(client, auth, db_engine)
    stop = start_scheduler(_settings(settings, scheduler_enabled=False))
    assert "scheduler" not in {thread.name for thread in threading.enumerate()}
    time.sleep(0.3)
    stop()
    assert _runs(db_engine) == []
