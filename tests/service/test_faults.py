"""Faults with real processes: the API restarted mid-job, the workers' connections killed.

After each, the job ends with exactly n_trials complete trials, no trial number twice, and the
stored front equal to the front recomputed from the trials. (A worker SIGKILLed mid-trial is in
test_worker_processes.py; a database that goes away and comes back in test_worker_database_loss.)
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, make_url, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from service.db.engine import write_session
from service.db.tables import Job
from service.keys import create_key
from tests.service import test_worker_support as support
from tests.service.test_worker_processes import _assert_front_matches_trials
from tests.service.test_worker_support import ROOT, ServiceDB, Worker, free_port, wait_until

service_db = support.service_db  # the fixture: SQLite and PostgreSQL

JOB = {
    "dataset": "digits",
    "n_trials": 4,
    "seed": 0,
    "parallelism": 1,
    "space": {"multipliers": [0.25, 0.5]},
    "train": {"epochs": 30, "finetune_epochs": 0, "batch_size": 256},
}


def _assert_whole(db: ServiceDB, job_id: str, n_trials: int) -> None:
    trials = db.trials(job_id)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert [t.state for t in trials].count("complete") == n_trials
    assert not [t for t in trials if t.state == "running"]
    job = db.job(job_id)
    assert (job.status, job.n_complete, job.n_running) == ("succeeded", n_trials, 0)
    _assert_front_matches_trials(db, job_id)


@contextmanager
def _serve(db: ServiceDB, *, port: int, name: str) -> Iterator[Worker]:
    """`paretonas serve --workers 1` as a real process; SIGTERM (graceful) at the end."""
    log_path = db.tmp / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "1",
             "--worker-grace", "20"],
            cwd=ROOT, env=db.env(), stdout=log_file, stderr=subprocess.STDOUT,
        )
    db.processes.append(process)
    server = Worker(process=process, log_path=log_path)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_restarting_the_api_mid_job_loses_nothing(service_db: ServiceDB) -> None:
    with write_session(service_db.engine) as session:
        key = create_key(session, name="faults").key
    auth = {"Authorization": f"Bearer {key}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    with _serve(service_db, port=port, name="serve-1") as first:
        wait_until(lambda: _up(port), what="the API", watch=first)
        created = httpx.post(f"{base}/jobs", json=JOB, headers=auth, timeout=30)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        wait_until(lambda: service_db.job(job_id).n_complete >= 1, what="a trial", watch=first)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()
        assert ready["status"] == "ready" and ready["workers"]["live"] == 1, ready
    # SIGTERM: the API stopped, its worker released its trial (or had none running).
    assert service_db.job(job_id).n_running == 0
    with _serve(service_db, port=port, name="serve-2") as second:
        wait_until(lambda: _up(port), what="the API again", watch=second)
        wait_until(lambda: service_db.job(job_id).status == "succeeded", what="the job",
                   watch=second, timeout=180)
        shown = httpx.get(f"{base}/jobs/{job_id}", headers=auth, timeout=10).json()
        assert shown["trials"]["complete"] == JOB["n_trials"] and shown["warning"] is None
    _assert_whole(service_db, job_id, JOB["n_trials"])


def _status(engine: Engine, job_id: str) -> str | None:
    """The job's status, or None when this poll's connection was cut (tried again)."""
    try:
        with engine.connect() as connection:
            status: str = connection.execute(
                select(Job.status).where(Job.id == job_id)).scalar_one()
            return status
    except OperationalError:
        return None


def _terminate_backends(admin_url: str, databases: list[str]) -> int:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return len(connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = ANY(:names) AND pid <> pg_backend_pid()"),
                {"names": databases},
            ).all())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "db_backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_killing_the_workers_connections_from_the_server_loses_nothing(
    service_db: ServiceDB,
) -> None:
    job_id = support.create_job(service_db, n_trials=5, parallelism=2, epochs=20)
    workers = [service_db.start_worker(name=f"w{i}") for i in range(2)]
    names = [make_url(service_db.url).database, make_url(service_db.optuna_url).database]
    admin = make_url(service_db.url).set(database="postgres").render_as_string(
        hide_password=False)
    poll = create_engine(service_db.url, poolclass=NullPool)  # its connections are cut too
    killed, rounds = 0, 0
    deadline = time.monotonic() + 150
    while _status(poll, job_id) != "succeeded":
        assert time.monotonic() < deadline, [w.log() for w in workers]
        assert all(w.process.poll() is None for w in workers), [w.log() for w in workers]
        time.sleep(0.7)
        killed += _terminate_backends(admin, [n for n in names if n])
        rounds += 1
    poll.dispose()
    service_db.engine.dispose()  # drop the pooled connections the server closed
    assert rounds >= 3 and killed >= 3  # the connections really were cut, several times
    for worker in workers:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.log()
    _assert_whole(service_db, job_id, 5)


def test_a_worker_sigkilled_mid_trial_leaves_one_json_log_line_per_event(
    service_db: ServiceDB, tmp_path: Path
) -> None:
    """JSON logs (PARETONAS_LOG_FORMAT=json): every line parses, trial lines carry the ids."""
    job_id = support.create_job(service_db, n_trials=2, epochs=25)
    doomed = service_db.start_worker(name="doomed", PARETONAS_LOG_FORMAT="json")
    wait_until(lambda: [t for t in service_db.trials(job_id) if t.state == "running"],
               what="a running trial", watch=doomed)
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    survivor = service_db.start_worker(name="survivor", PARETONAS_LOG_FORMAT="json")
    wait_until(lambda: service_db.job(job_id).status == "succeeded", what="the job",
               watch=survivor)
    survivor.signal(signal.SIGTERM)
    assert survivor.wait() == 0
    lines = [json.loads(line) for line in survivor.log().splitlines() if line.strip()]
    assert {"time", "level", "logger", "message", "worker_id"} <= set(lines[0])
    about_trials = [line for line in lines if line["message"].startswith(("trial job=", "job "))]
    assert about_trials, lines
    for line in about_trials:
        assert line["job_id"] == job_id and isinstance(line["trial"], int), line
    reaped = [line for line in lines if "lease expired" in line["message"]]
    assert reaped and reaped[0]["job_id"] == job_id
    _assert_whole(service_db, job_id, 2)
