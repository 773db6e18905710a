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

from sqlalchemy import Connection, Engine

from service.db.engine import make_engine

__all__ = ["is_postgres", "utcnow", "worker_engine", "write_transaction"]


def utcnow() -> datetime:
    """Timezone-aware UTC now: the one clock of leases and timestamps."""
    return datetime.now(UTC)


def is_postgres(engine: Engine | Connection) -> bool:
    """True on PostgreSQL (row locks with SKIP LOCKED), False on SQLite (BEGIN IMMEDIATE)."""
    return engine.dialect.name == "postgresql"


def worker_engine(url: str, *, pool_size: int = 3) -> Engine:
    """An engine for one worker process: a connection for the loop, one for the heartbeat."""
    return make_engine(url, pool_size=pool_size, sqlite_immediate=True)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed on success, rolled back on any error."""
    with engine.begin() as connection:
        yield connection
