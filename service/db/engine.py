"""Engines and sessions for the service database (SQLite by default, PostgreSQL in production).

SQLite: WAL (readers never block the writer), a busy timeout, foreign keys on, and the driver's
own transaction handling turned off (``isolation_level=None``) so SQLAlchemy emits BEGIN itself:
plain ``BEGIN`` for reads and ``BEGIN IMMEDIATE`` for writes (``write_session``), which takes the
write lock up front and so never fails half-way with "database is locked" on a lock upgrade. This
is the recipe of SQLAlchemy's pysqlite documentation ("Serializable isolation / Savepoints /
Transactional DDL"). PostgreSQL: psycopg 3 with pre-ping so a restarted server costs a retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session

__all__ = ["PG_CONNECT_TIMEOUT_S", "SQLITE_BUSY_MS", "deferred", "make_engine", "read_session",
           "write_session"]

SQLITE_BUSY_MS = 30_000
PG_CONNECT_TIMEOUT_S = 5  # unless the URL says otherwise (?connect_timeout=N)
_IMMEDIATE = "paretonas_sqlite_immediate"


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_timeout: float = 30.0,
    sqlite_immediate: bool = False,
) -> Engine:
    """An engine for ``url``; creates the parent directory of a SQLite file.

    ``pool_size`` + ``max_overflow`` connections at most, a checkout waits ``pool_timeout``
    seconds for one (then SQLAlchemy's TimeoutError: the API answers 503 with Retry-After).
    ``sqlite_immediate``: every transaction on SQLite begins IMMEDIATE (the workers' engine),
    not only those of ``write_session``.
    """
    parsed = make_url(url)
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if parsed.get_backend_name() == "sqlite":
        memory = not parsed.database or parsed.database == ":memory:"
        if not memory:
            Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_MS / 1000}, **({} if memory else pool)
        )
        _configure_sqlite(engine, always_immediate=sqlite_immediate)
        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # A database host that stops answering (not one that refuses) held every new connection
        # for the kernel's TCP timeout, minutes, before the API could answer 503.
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **pool)


def deferred(engine: Engine) -> Engine:
    """A view of ``engine`` whose SQLite transactions begin plain (no write lock): for the cheap
    reads a worker engine (``sqlite_immediate``) makes, e.g. the cancel check after every epoch."""
    return engine.execution_options(**{_IMMEDIATE: False})


def _configure_sqlite(engine: Engine, *, always_immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN from the sqlite3 module
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, always_immediate)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads (a plain deferred transaction); rolled back at the end."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A write transaction (BEGIN IMMEDIATE on SQLite): committed on success, else rolled back."""
    writer = engine.execution_options(**{_IMMEDIATE: True})
    with Session(writer, expire_on_commit=False) as session, session.begin():
        session.connection()  # BEGIN now, not at the first statement: the lock is taken up front
        yield session
