"""The worker's SQLAlchemy engine and its write transactions.

On SQLite every worker transaction writes, so it starts with ``BEGIN IMMEDIATE``: the write lock is
taken up front and two workers never both read "there is room" and then both insert. The file runs
in WAL mode with a busy timeout so readers (the API) are never blocked. On PostgreSQL rows are
locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` (see ``claim``) and connections are pre-pinged
so a restarted server costs one retry, not a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

__all__ = ["is_postgres", "utcnow", "worker_engine", "write_transaction"]

SQLITE_BUSY_MS = 30_000


def utcnow() -> datetime:
    """Timezone-aware UTC now: the one clock of leases and timestamps."""
    return datetime.now(UTC)


def is_postgres(engine: Engine | Connection) -> bool:
    """True on PostgreSQL (row locks with SKIP LOCKED), False on SQLite (BEGIN IMMEDIATE)."""
    return engine.dialect.name == "postgresql"


def worker_engine(url: str, *, pool_size: int = 3) -> Engine:
    """An engine for one worker process: a connection for the loop, one for the heartbeat."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000})
        _sqlite_immediate(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=2)


def _sqlite_immediate(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, emit BEGIN, and make it BEGIN IMMEDIATE."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN from the driver
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed on success, rolled back on any error."""
    with engine.begin() as connection:
        yield connection
