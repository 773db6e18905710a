"""Two identical POSTs with one Idempotency-Key that both miss the key lookup: exactly one job.

The race is forced, not hoped for: both requests check the key, wait for each other at a barrier,
then both insert. The unique (owner, key) index makes one insert fail; that request must answer
with the other's job (created False), on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from service.api import jobs
from service.api.schemas import JobCreate
from service.db.engine import read_session
from service.db.tables import ApiKey, Job
from service.settings import Settings


def test_concurrent_retries_with_one_key_store_one_job(
    db_engine: Engine, settings: Settings, make_key: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_key("alice")
    with read_session(db_engine) as session:
        owner = session.scalars(select(ApiKey).where(ApiKey.name == "alice")).one()
    body = JobCreate(dataset="digits", n_trials=3)
    barrier = threading.Barrier(2, timeout=30)
    first_lookup = threading.local()
    real_find_replay = jobs.find_replay

    def racing_find_replay(
        engine: Engine, table: type[Job], *, owner: ApiKey, key: str, digest: str
    ) -> Job | None:
        found = real_find_replay(engine, table, owner=owner, key=key, digest=digest)
        if not getattr(first_lookup, "done", False):  # both miss, then both insert
            first_lookup.done = True
            assert found is None
            barrier.wait()
        return found

    monkeypatch.setattr(jobs, "find_replay", racing_find_replay)

    def post() -> tuple[str, bool]:
        job, created = jobs.create_job(db_engine, body=body, owner=owner, settings=settings,
                                       idempotency_key="retry-1")
        return job.id, created

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [f.result(timeout=60) for f in [pool.submit(post), pool.submit(post)]]

    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0] == results[1][0]
    with read_session(db_engine) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1
