"""Helpers for the worker tests (no tests here): databases per backend, jobs, real worker processes.

Each test gets conftest's migrated service database and an Optuna storage of the same backend of
its own (a SQLite file, or a fresh PostgreSQL database dropped afterwards): the two never share a
database, as Optuna has a ``trials`` table too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert, select, update

from search.config import parse_config
from search.engine import reference_point
from service.db.tables import ApiKey, Job, Trial
from tests.service.conftest import create_postgres_database, drop_postgres_database

ROOT = Path(__file__).resolve().parents[2]

# Short leases so a killed worker's trial is retried within seconds.
FAST_LEASES = {
    "PARETONAS_LEASE_SECONDS": "2",
    "PARETONAS_HEARTBEAT_SECONDS": "0.4",
    "PARETONAS_WORKER_POLL_SECONDS": "0.2",
    "PARETONAS_DB_RETRY_MAX_SECONDS": "1",
}


@dataclass
class ServiceDB:
    """A service database with our tables, and the Optuna storage next to it."""

    url: str
    optuna_url: str
    engine: Engine
    tmp: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment of a worker process pointed at these databases."""
        env = dict(os.environ)
        env.update(FAST_LEASES)
        env["PARETONAS_DATABASE_URL"] = self.url
        env["PARETONAS_OPTUNA_STORAGE"] = self.optuna_url
        env["PYTHONUNBUFFERED"] = "1"
        env.update(overrides)
        return env

    def start_worker(self, *args: str, name: str = "worker", **env: str) -> Worker:
        """Start ``python -m service.cli worker --device cpu ARGS`` as a real process."""
        log_path = self.tmp / f"{name}-{len(self.processes)}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--device", "cpu", *args],
            cwd=ROOT,
            env=self.env(**env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        self.processes.append(process)
        return Worker(process=process, log_path=log_path)

    def trials(self, job_id: str) -> list[Any]:
        """All trial rows of a job, by number."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    select(Trial).where(Trial.job_id == job_id).order_by(Trial.number)
                ).all()
            )

    def job(self, job_id: str) -> Any:
        """The job row."""
        with self.engine.connect() as connection:
            return connection.execute(select(Job).where(Job.id == job_id)).one()

    def cancel(self, job_id: str) -> None:
        """What the API's cancel does: ask the workers to stop the job."""
        with self.engine.begin() as connection:
            connection.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))


@dataclass
class Worker:
    """A running worker process and its combined log."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Everything the worker printed so far."""
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """Send a signal to the worker process."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        """Wait for exit; fail the test with the log if it does not exit in time."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"worker did not exit within {timeout} s; log:\n{self.log()}")


def wait_until(
    condition: Callable[[], Any], *, what: str, watch: Worker | None = None, timeout: float = 90
) -> Any:
    """Poll ``condition`` every 50 ms until it returns something truthy.

    Fails after ``timeout`` seconds, or at once when the ``watch``ed worker has exited.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if watch is not None and watch.process.poll() is not None:
            pytest.fail(f"worker exited ({watch.process.returncode}) before {what}:\n{watch.log()}")
        time.sleep(0.05)
    log = watch.log() if watch is not None else ""
    pytest.fail(f"timed out waiting for {what}; log:\n{log}")


@pytest.fixture
def service_db(db_backend: str, database_url: str, tmp_path: Path) -> Iterator[ServiceDB]:
    """The migrated service database of conftest's ``database_url`` (SQLite and PostgreSQL), with
    an Optuna storage of the same backend in a database of its own."""
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    if db_backend == "postgres":
        optuna_url = create_postgres_database(prefix="paretonas_test_optuna")
    engine = create_engine(database_url)
    db = ServiceDB(url=database_url, optuna_url=optuna_url, engine=engine, tmp=tmp_path)
    try:
        yield db
    finally:
        for process in db.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        engine.dispose()
        if db_backend == "postgres":
            drop_postgres_database(optuna_url)


def search_config(
    *, n_trials: int, epochs: int, seed: int = 0, space: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A tiny search on digits: narrow MLPs, ``epochs`` epochs (~0.05 s each), no fine-tune.

    Early stopping is off, so the fault-tolerance tests count exactly ``n_trials`` complete trials
    (the rule in the worker path is tested in test_worker_verdicts.py); duplicates stay skipped.
    """
    config = parse_config(
        {
            "dataset": "digits",
            "n_trials": n_trials,
            "seed": seed,
            "space": space or {"multipliers": [0.25, 0.5]},
            "train": {"epochs": epochs, "finetune_epochs": 0, "batch_size": 256},
            "early_stopping": False,
        }
    )
    return config.to_dict()


def create_job(
    db: ServiceDB,
    *,
    n_trials: int,
    parallelism: int = 1,
    epochs: int = 1,
    seed: int = 0,
    space: dict[str, Any] | None = None,
) -> str:
    """Insert a queued tiny-search job (``search_config``); returns its id."""
    config = search_config(n_trials=n_trials, epochs=epochs, seed=seed, space=space)
    return insert_job(db.engine, config=config, parallelism=parallelism)


def insert_job(
    engine: Engine,
    *,
    config: dict[str, Any],
    parallelism: int,
    gpus_per_trial: float = 0.0,
    cpus_per_trial: float = 1.0,
    owner: str = "test",
) -> str:
    """Insert a queued job the way the API stores one, under a new API key named ``owner``.

    ``config`` is a parsed search config's ``to_dict()``, stored as is; the reference point is
    computed from it as POST /jobs does. Returns the job's id. The Ray benchmark uses it too.
    """
    job_id = f"job_{uuid.uuid4().hex[:26].upper()}"
    with engine.begin() as connection:
        key_id = connection.execute(
            insert(ApiKey)
            .values(name=owner, prefix=job_id[-8:], key_hash=uuid.uuid4().hex * 2)
            .returning(ApiKey.id)
        ).scalar_one()
        connection.execute(
            insert(Job).values(
                id=job_id,
                owner_id=key_id,
                status="queued",
                dataset="digits",
                config_json=json.dumps(config),
                n_trials=config["n_trials"],
                parallelism=parallelism,
                gpus_per_trial=gpus_per_trial,
                cpus_per_trial=cpus_per_trial,
                study_name=f"study-{job_id}",
                request_hash=uuid.uuid4().hex,
                reference_point_json=json.dumps(reference_point(parse_config(config))),
            )
        )
    return job_id


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target`` once started; before that the port refuses."""

    def __init__(self, *, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    def start(self) -> None:
        """Begin accepting and forwarding connections."""
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        """Close the listener and every forwarded connection (the database 'goes away')."""
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._server.close()
            self._server = None
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


__all__ = [
    "FAST_LEASES",
    "ServiceDB",
    "TcpProxy",
    "Worker",
    "create_job",
    "free_port",
    "search_config",
    "service_db",
    "signal",
    "wait_until",
]
