"""The service engine: SQLite pragmas and BEGIN IMMEDIATE, UTC timestamps, constraints."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from service.db.engine import PG_CONNECT_TIMEOUT_S, make_engine, read_session, write_session
from service.db.tables import ApiKey, Job


def _key(engine: Engine, name: str = "k") -> int:
    with write_session(engine) as session:
        key = ApiKey(name=name, prefix="abcdefgh", key_hash=name.encode().hex().ljust(64, "0"))
        session.add(key)
        session.flush()
        return key.id


def _job(engine: Engine, *, owner_id: int, job_id: str, status: str = "queued") -> None:
    with write_session(engine) as session:
        session.add(
            Job(
                id=job_id,
                owner_id=owner_id,
                status=status,
                dataset="digits",
                config_json="{}",
                n_trials=4,
                parallelism=1,
                study_name=f"study-{job_id}",
                request_hash="h",
                reference_point_json="[0, 1]",
            )
        )


def test_sqlite_pragmas(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'deep' / 'service.db'}")
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            }
    finally:
        engine.dispose()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 30_000, "foreign_keys": 1}


def test_sqlite_write_session_takes_the_write_lock_up_front(tmp_path) -> None:
    """While one write session is open (even before it writes), a second writer waits."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    from service.db.migrations import upgrade

    upgrade(url)
    engine = make_engine(url)
    order: list[str] = []
    opened = threading.Event()
    try:
        _key(engine, "first")

        def second_writer() -> None:
            opened.wait()
            with write_session(engine) as session:
                order.append("second begins")
                session.add(ApiKey(name="b", prefix="p", key_hash="b" * 64))

        thread = threading.Thread(target=second_writer)
        thread.start()
        with write_session(engine) as session:
            opened.set()
            thread.join(timeout=0.5)  # it cannot BEGIN IMMEDIATE while we hold the lock
            order.append("first commits")
            session.add(ApiKey(name="a", prefix="p", key_hash="a" * 64))
        thread.join(timeout=30)
        with read_session(engine) as session:
            names = session.scalars(select(ApiKey.name).order_by(ApiKey.id)).all()
    finally:
        engine.dispose()
    assert order == ["first commits", "second begins"]
    assert names == ["first", "a", "b"]


def test_timestamps_are_utc_aware(db_engine: Engine) -> None:
    key_id = _key(db_engine)
    plus_two = timezone(timedelta(hours=2))
    revoked = datetime(2026, 1, 2, 12, 0, tzinfo=plus_two)
    with write_session(db_engine) as session:
        session.get_one(ApiKey, key_id).revoked_at = revoked
    with read_session(db_engine) as session:
        key = session.get_one(ApiKey, key_id)
    assert key.created_at.tzinfo is UTC
    assert key.revoked_at == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    assert key.revoked_at.tzinfo is UTC


def test_naive_timestamp_is_refused(db_engine: Engine) -> None:
    key_id = _key(db_engine)
    with (
        pytest.raises(StatementError, match=r"has no time zone; pass datetime\.now\(UTC\)"),
        write_session(db_engine) as session,
    ):
        session.get_one(ApiKey, key_id).revoked_at = datetime(2026, 1, 1)


def test_job_defaults(db_engine: Engine) -> None:
    _job(db_engine, owner_id=_key(db_engine), job_id="job_A")
    with read_session(db_engine) as session:
        job = session.get_one(Job, "job_A")
    counters = (job.n_complete, job.n_failed, job.n_running, job.front_size)
    assert (counters, job.cancel_requested, job.hypervolume, job.error) == (
        (0, 0, 0, 0),
        False,
        None,
        None,
    )
    assert job.created_at.tzinfo is UTC


def test_foreign_key_and_status_are_enforced(db_engine: Engine) -> None:
    with pytest.raises(IntegrityError):
        _job(db_engine, owner_id=999, job_id="job_orphan")
    owner = _key(db_engine)
    with pytest.raises(IntegrityError):
        _job(db_engine, owner_id=owner, job_id="job_bad", status="paused")


def test_idempotency_key_is_unique_per_owner(db_engine: Engine) -> None:
    first, second = _key(db_engine, "one"), _key(db_engine, "two")
    rows = [
        {
            "id": f"job_{i}",
            "owner_id": owner,
            "idempotency_key": "same",
            "dataset": "digits",
            "config_json": "{}",
            "n_trials": 1,
            "study_name": f"s{i}",
            "request_hash": "h",
            "reference_point_json": "[]",
        }
        for i, owner in enumerate((first, second))
    ]
    with write_session(db_engine) as session:
        session.execute(insert(Job), rows)  # the same key under two owners is fine
    with pytest.raises(IntegrityError), write_session(db_engine) as session:
        session.execute(insert(Job), [{**rows[0], "id": "job_9", "study_name": "s9"}])


def test_a_postgresql_host_that_never_answers_fails_within_the_connect_timeout() -> None:
    """A host that accepts the TCP connection and then says nothing (a hung server, a black
    hole behind a proxy) held each new connection forever: the API could not answer 503."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever speaks
        url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/x"
        engine = make_engine(url)
        outcome: list[BaseException] = []

        def connect() -> None:
            try:
                with engine.connect():
                    pass
            except BaseException as error:  # kept for the asserts below
                outcome.append(error)

        worker = threading.Thread(target=connect, daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(PG_CONNECT_TIMEOUT_S + 25)
        assert not worker.is_alive(), "connect still waiting"
        assert isinstance(outcome[0], OperationalError), outcome
        assert time.monotonic() - started >= PG_CONNECT_TIMEOUT_S - 1
        engine.dispose()
    slow = make_engine("postgresql+psycopg://postgres@127.0.0.1/x?connect_timeout=30")
    assert slow.dialect.create_connect_args(slow.url)[1]["connect_timeout"] == "30"
