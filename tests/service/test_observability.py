"""Worker presence (/readyz, job warnings), /metrics and the log formats, against the real app.

Rows are written the way workers write them; every value asserted is counted from those rows.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, insert, update

from service.api import create_app
from service.db.base import utcnow
from service.db.tables import Job, Trial, Worker
from service.logs import make_handler, set_worker_id, trial_context
from service.settings import Settings
from service.worker.context import WorkerContext
from service.worker.database import worker_engine
from service.worker.presence import Presence
from tests.service.test_worker_support import ROOT, free_port

NO_WORKER = re.compile(
    r"no worker has been seen for (\d+) s; trials run only while a worker runs: start one with "
    r"`paretonas worker` \(or `paretonas serve --workers N`\)"
)


def _worker(engine: Engine, *, id: str, seen_ago: float, stopped: bool = False) -> None:
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(insert(Worker).values(
            id=id, hostname="gpu-1", pid=7, device="cuda:0", started_at=now - timedelta(hours=1),
            last_seen_at=now - timedelta(seconds=seen_ago),
            stopped_at=now if stopped else None, job_id=None, trial_number=None))


def _submit(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json={"dataset": "digits", "n_trials": 3},
                           headers=auth)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def test_readyz_and_jobs_say_when_no_worker_is_seen(
    client: TestClient, db_engine: Engine, auth: dict[str, str]
) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["degraded"]) == ("degraded", True)
    never = ("no worker has been seen yet; trials run only while a worker runs: start one with "
             "`paretonas worker` (or `paretonas serve --workers N`)")
    assert body["reasons"] == [never]
    assert body["workers"] == {"live": 0, "stale_after_seconds": 60.0, "last_seen_at": None,
                               "seen": []}
    job = _submit(client, auth)
    assert job["warning"] == never
    # A worker seen 125 s ago (stale after 60 s), one stopped: still degraded, with the age.
    _worker(db_engine, id="old", seen_ago=125)
    _worker(db_engine, id="gone", seen_ago=300, stopped=True)
    body = client.get("/readyz").json()
    assert body["status"] == "degraded"
    match = NO_WORKER.fullmatch(body["reasons"][0])
    assert match is not None and 125 <= int(match[1]) <= 127
    assert [(w["id"], w["state"]) for w in body["workers"]["seen"]] == [
        ("old", "stale"), ("gone", "stopped")]
    shown = client.get(f"/api/v1/jobs/{job['id']}", headers=auth).json()
    assert NO_WORKER.fullmatch(shown["warning"])
    listed = client.get("/api/v1/jobs", headers=auth).json()["data"]
    assert NO_WORKER.fullmatch(listed[0]["warning"])
    # A live worker: ready, no warning; a finished job never warns.
    _worker(db_engine, id="live", seen_ago=2)
    body = client.get("/readyz").json()
    assert (body["status"], body["degraded"], body["reasons"]) == ("ready", False, [])
    assert body["workers"]["live"] == 1 and body["workers"]["seen"][0]["id"] == "live"
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=auth).json()["warning"] is None
    with db_engine.begin() as connection:
        connection.execute(update(Worker).values(stopped_at=utcnow()))
        connection.execute(update(Job).values(status="succeeded"))
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=auth).json()["warning"] is None


def test_a_worker_announces_itself_beats_and_says_it_stopped(database_url: str,
                                                              tmp_path: Any) -> None:
    ctx = WorkerContext(engine=worker_engine(database_url), worker_id="host:1:abc",
                        optuna_storage=f"sqlite:///{tmp_path / 'o.db'}", lease_seconds=10,
                        heartbeat_seconds=0.05, max_trial_retries=0, device="cuda:3")
    reader = create_engine(database_url)

    def rows() -> list[Any]:
        with reader.connect() as connection:
            return list(connection.execute(Worker.__table__.select()).all())

    with Presence(ctx) as presence:
        presence.working_on(job_id="job_X", trial_number=4)
        deadline = utcnow() + timedelta(seconds=30)
        while not [r for r in rows() if r.job_id == "job_X"]:
            assert utcnow() < deadline
    (row,) = rows()
    assert (row.id, row.device, row.stopped_at is not None) == ("host:1:abc", "cuda:3", True)
    assert (row.job_id, row.trial_number) == (None, None)
    ctx.engine.dispose()
    reader.dispose()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_what_the_tables_hold(
    client: TestClient, db_engine: Engine, auth: dict[str, str]
) -> None:
    job = _submit(client, auth)
    used_up = _submit(client, auth)  # its space is used up: nothing left to hand out
    now = utcnow()
    rows = [("complete", 3.0, None), ("complete", 45.0, None), ("failed", None,
             "lease expired: worker w stopped renewing it"), ("failed", None,
             "exceeded the per-trial wall-time limit of 1 s ..."), ("stopped", None, "cancel"),
            ("running", None, None), ("stopped_early", 2.0, "lost to trial 0")]
    with db_engine.begin() as connection:
        for number, (state, seconds, error) in enumerate(rows):
            connection.execute(insert(Trial).values(
                job_id=job["id"], number=number, state=state, params_json="{}",
                train_seconds=seconds, error=error, started_at=now))
        connection.execute(update(Job).where(Job.id == job["id"]).values(
            status="running", n_running=1, n_complete=2, n_stopped_early=1, n_trials=6))
        connection.execute(update(Job).where(Job.id == used_up["id"]).values(
            status="running", finished_reason="space used up"))
    _worker(db_engine, id="w-live", seen_ago=1)
    client.get(f"/api/v1/jobs/{job['id']}", headers=auth)
    client.get("/nowhere/at/all")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    got = _samples(response.text)
    assert got[("paretonas_database_up", ())] == 1
    assert got[("paretonas_jobs", (("state", "queued"),))] == 0
    # 6 trials: 2 complete + 1 stopped early (trained) + 1 running leave 2; the used-up job none
    # (it counted n_trials - complete - running: stopped-early trials and used-up jobs too)
    assert got[("paretonas_queue_trials", ())] == 2
    assert got[("paretonas_jobs", (("state", "running"),))] == 2
    assert got[("paretonas_trials", (("state", "running"),))] == 1
    for state, count in (("complete", 2), ("stopped_early", 1), ("failed", 2), ("stopped", 1)):
        assert got[("paretonas_trials_finished_total", (("state", state),))] == count
    assert got[("paretonas_leases_expired_total", ())] == 1
    assert got[("paretonas_trials_timed_out_total", ())] == 1
    assert got[("paretonas_trial_duration_seconds_bucket", (("le", "5.0"),))] == 1
    assert got[("paretonas_trial_duration_seconds_bucket", (("le", "60.0"),))] == 2
    assert got[("paretonas_trial_duration_seconds_count", ())] == 2
    assert got[("paretonas_trial_duration_seconds_sum", ())] == 48.0
    assert got[("paretonas_workers", (("state", "live"),))] == 1
    beat = ("paretonas_worker_last_heartbeat_timestamp_seconds",
            (("device", "cuda:0"), ("host", "gpu-1"), ("worker", "w-live")))
    assert abs(got[beat] - (now.timestamp() - 1)) < 30
    route = (("method", "GET"), ("route", "/api/v1/jobs/{job_id}"), ("status", "200"))
    assert got[("paretonas_http_request_duration_seconds_count", route)] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert got[("paretonas_http_request_duration_seconds_count", unmatched)] == 1


def test_metrics_answer_when_the_database_is_away(settings: Settings) -> None:
    away = settings.model_copy(
        update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"})
    with TestClient(create_app(away)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert _samples(response.text)[("paretonas_database_up", ())] == 0


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_lines_carry_the_worker_job_and_trial(fmt: str) -> None:
    stream = io.StringIO()
    logger = logging.getLogger(f"paretonas.test.{fmt}")
    logger.propagate = False
    logger.addHandler(make_handler(fmt, stream=stream))  # type: ignore[arg-type]
    set_worker_id("host:9:w")
    logger.warning("idle")
    with trial_context(job_id="job_A", trial=3):
        logger.warning("epoch %d", 5)
    logger.warning("reaped", extra={"job_id": "job_B", "trial": 1})
    lines = stream.getvalue().splitlines()
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        assert [(r["message"], r.get("job_id"), r.get("trial")) for r in records] == [
            ("idle", None, None), ("epoch 5", "job_A", 3), ("reaped", "job_B", 1)]
        assert {r["worker_id"] for r in records} == {"host:9:w"}
        assert records[0]["level"] == "WARNING" and records[0]["logger"] == logger.name
    else:
        assert lines[0].endswith(f"WARNING {logger.name}: idle")
        assert lines[1].endswith(f"WARNING {logger.name} [job=job_A trial=3]: epoch 5")
        assert lines[2].endswith(f"WARNING {logger.name} [job=job_B trial=1]: reaped")


def test_http_latency_sums_every_process_in_multiprocess_mode(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, /metrics counts the requests of every API process."""
    (tmp_path / "metrics").mkdir()
    code = (
        "import os, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from service.api import create_app\n"
        "from service.db.migrations import upgrade\n"
        "from service.settings import Settings\n"
        "settings = Settings(data_dir=sys.argv[1])\n"
        "upgrade(settings.database_url)\n"
        "for _ in range(2):  # two other API processes, one request each\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        with TestClient(create_app(settings)) as client:\n"
        "            client.get('/healthz')\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
        "with TestClient(create_app(settings)) as client:\n"
        "    print(client.get('/metrics').text)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = _samples(done.stdout)
    healthz = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert got[("paretonas_http_request_duration_seconds_count", healthz)] == 2
    assert got[("paretonas_database_up", ())] == 1
