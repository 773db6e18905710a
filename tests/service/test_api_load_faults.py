"""Quotas (429), a database that is away (503 + Retry-After) and concurrent writes on a small pool,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.api import create_app
from service.settings import Settings
from tests.service.test_dashboard_session import form_token, sign_in

P = "https://paretonas.dev/problems/"
JOBS = "/api/v1/jobs"


def _with(settings: Settings, **changes: Any) -> Settings:
    limits = {k: v for k, v in changes.items() if hasattr(settings.limits, k)}
    top = {k: v for k, v in changes.items() if k not in limits}
    return settings.model_copy(update={**top, "limits": settings.limits.model_copy(update=limits)})


def test_active_trials_quota(settings: Settings, make_key: Callable[[str], str]) -> None:
    auth = {"Authorization": f"Bearer {make_key('alice')}"}
    other = {"Authorization": f"Bearer {make_key('bob')}"}
    with TestClient(create_app(_with(settings, max_active_trials_per_key=10))) as client:
        first = client.post(JOBS, json={"dataset": "digits", "n_trials": 6}, headers=auth)
        assert first.status_code == 202
        refused = client.post(JOBS, json={"dataset": "digits", "n_trials": 5}, headers=auth)
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "60")
        assert refused.json() == {
            "type": P + "quota-exceeded",
            "title": "Quota exceeded",
            "status": 429,
            "detail": "n_trials: got 5 with 6 trials of this key already queued or running; a "
            "key may have at most 10 (wait for jobs to finish or cancel some; operators raise "
            "PARETONAS_LIMITS__MAX_ACTIVE_TRIALS_PER_KEY)",
            "instance": JOBS,
            "path": "n_trials",
            "limit": 10,
            "setting": "PARETONAS_LIMITS__MAX_ACTIVE_TRIALS_PER_KEY",
        }
        assert (
            client.post(JOBS, json={"dataset": "digits", "n_trials": 4}, headers=auth).status_code
            == 202
        )
        assert (
            client.post(JOBS, json={"dataset": "digits", "n_trials": 5}, headers=other).status_code
            == 202
        )  # another key has its own
        job_id = first.json()["id"]
        assert client.post(f"{JOBS}/{job_id}:cancel", headers=auth).status_code == 200
        assert (
            client.post(JOBS, json={"dataset": "digits", "n_trials": 5}, headers=auth).status_code
            == 202
        )  # a cancelled job frees its trials


def test_jobs_per_day_quota(settings: Settings, make_key: Callable[[str], str]) -> None:
    auth = {"Authorization": f"Bearer {make_key('alice')}"}
    with TestClient(create_app(_with(settings, max_jobs_per_day=2))) as client:
        for _ in range(2):
            assert (
                client.post(
                    JOBS, json={"dataset": "digits", "n_trials": 1}, headers=auth
                ).status_code
                == 202
            )
        refused = client.post(JOBS, json={"dataset": "digits", "n_trials": 1}, headers=auth)
        assert refused.status_code == 429
        retry = int(refused.headers["retry-after"])
        assert 86_000 < retry <= 86_400  # when the first of the two leaves the 24 h window
        assert refused.json()["detail"] == (
            f"this key submitted 2 jobs in the last 24 hours; at most 2 allowed (retry after "
            f"{retry} s; operators raise PARETONAS_LIMITS__MAX_JOBS_PER_DAY)"
        )


def test_a_database_that_is_away_answers_503(
    settings: Settings, db_backend: str, tmp_path: Path
) -> None:
    if db_backend == "sqlite":
        (tmp_path / "a-folder.db").mkdir()
        url = f"sqlite:///{tmp_path / 'a-folder.db'}"  # cannot be opened as a database
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"
    away = _with(settings, database_url=url)
    with TestClient(create_app(away)) as client:
        response = client.get(JOBS, headers={"Authorization": "Bearer pnas_x"})
    assert (response.status_code, response.headers["retry-after"]) == (503, "2")
    body = response.json()
    assert (body["type"], body["status"], body["instance"]) == (
        P + "database-unavailable",
        503,
        JOBS,
    )
    assert body["detail"].startswith("the database is unreachable (OperationalError: ")
    assert body["detail"].endswith(
        "; retry after 2 s (operators: check PARETONAS_DATABASE_URL and PARETONAS_DB_POOL_SIZE)"
    )


def test_concurrent_submissions_on_a_small_pool(
    settings: Settings, make_key: Callable[[str], str]
) -> None:
    """20 POSTs at once on a pool of 2 connections: every one is queued (202), none waits on a
    second connection while holding the first (which exhausted the pool before: 500s)."""
    keys = [make_key(f"k{i}") for i in range(2)]
    app = create_app(
        _with(settings, db_pool_size=2, db_max_overflow=0, db_pool_timeout_seconds=20.0)
    )

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            calls = [
                client.post(
                    JOBS,
                    json={"dataset": "digits", "n_trials": 2},
                    headers={"Authorization": f"Bearer {keys[i % 2]}"},
                )
                for i in range(20)
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    try:
        # A thread of its own: another test's session (Playwright's sync API) may hold a running
        # event loop in this thread, where asyncio.run refuses to start.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            statuses = pool.submit(asyncio.run, run()).result()
        assert statuses == [202] * 20
    finally:
        app.state.engine.dispose()


def test_every_write_route_works_on_a_pool_of_one_connection(
    settings: Settings, make_key: Callable[[str], str]
) -> None:
    """Each write gives the read connection of its key (or session cookie) back before it takes
    its own: with a single pooled connection every route answers as usual. (The schedule routes
    and the dashboard's sign-in and sign-out held two, and answered 503 once the pool waited.)"""
    key = make_key("solo")
    auth = {"Authorization": f"Bearer {key}"}
    app = create_app(
        _with(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=2.0)
    )
    body = {"name": "nightly", "cron": "30 2 * * *", "timezone": "UTC",
            "job": {"dataset": "digits", "n_trials": 2}}
    try:
        with TestClient(app) as client:
            seen = []
            created = client.post("/api/v1/schedules", json=body, headers=auth)
            replay_key = {**auth, "Idempotency-Key": "solo-1"}
            seen += [created.status_code,
                     client.post("/api/v1/schedules", json=body, headers=replay_key).status_code,
                     client.post("/api/v1/schedules", json=body, headers=replay_key).status_code]
            url = f"/api/v1/schedules/{created.json()['id']}"
            seen += [client.patch(url, json={"paused": True}, headers=auth).status_code,
                     client.post(f"{url}:run", headers=auth).status_code,
                     client.get(f"{url}/runs", headers=auth).status_code,
                     client.delete(url, headers=auth).status_code,
                     client.post(JOBS, json={"dataset": "digits", "n_trials": 2},
                                 headers=auth).status_code]
            assert seen == [201, 201, 200, 200, 202, 200, 204, 202]
            sign_in(client, key)
            jobs_page = client.get("/jobs")
            assert jobs_page.status_code == 200
            signed_out = client.post("/signout", data={"csrf_token": form_token(jobs_page.text)},
                                     follow_redirects=False)
            assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/signin")
    finally:
        app.state.engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_killed_connections_answer_503_never_500(
    settings: Settings, db_backend: str, make_key: Callable[[str], str]
) -> None:
    """The server terminates the API's connections every 50 ms while a client polls: every
    answer is 200 or 503 with Retry-After (issue 18: 5 x 500 and 4 dropped connections)."""
    if db_backend != "postgres":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    auth = {"Authorization": f"Bearer {make_key('alice')}"}
    killer = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    stop = threading.Event()

    def kill() -> None:
        with killer.connect() as connection:
            while not stop.is_set():
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                time.sleep(0.05)

    statuses: list[int] = []
    with TestClient(create_app(settings)) as client:
        job_id = client.post(JOBS, json={"dataset": "digits", "n_trials": 2}, headers=auth).json()[
            "id"
        ]
        thread = threading.Thread(target=kill, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(statuses) < 300:
                response = client.get(f"{JOBS}/{job_id}", headers=auth)
                statuses.append(response.status_code)
                if response.status_code == 503:
                    assert response.headers["retry-after"] == "2"
                    assert response.json()["type"] == P + "database-unavailable"
        finally:
            stop.set()
            thread.join(5)
            killer.dispose()
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) > 0
