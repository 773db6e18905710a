"""Survive a database that goes away: retry the step with capped exponential backoff, logged.

A worker that loses its database (a restarted server, a network cut, a read-only SQLite file) waits
and tries again instead of dying; the trial it holds keeps training meanwhile, and its lease simply
expires if the database stays away longer than the lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc

__all__ = ["Backoff", "StopRequested", "is_transient", "retry_transient"]

log = logging.getLogger("paretonas.worker")

T = TypeVar("T")


class StopRequested(Exception):
    """The worker was asked to stop while it waited for the database."""


def is_transient(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) is a lost or locked database, worth retrying.

    Optuna wraps driver errors in its own exception types, so the whole cause chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        current = current.__cause__ or current.__context__
    return False


class Backoff:
    """Delays 0.5 s, 1 s, 2 s, ... capped at ``max_seconds``; ``reset()`` after a success."""

    def __init__(self, *, initial: float = 0.5, max_seconds: float = 30.0) -> None:
        self.initial = initial
        self.max_seconds = max_seconds
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles it up to the cap."""
        delay = min(self.max_seconds, self.initial * float(2**self.failures))
        self.failures += 1
        return delay

    def reset(self) -> None:
        """Back to the shortest delay."""
        self.failures = 0


def retry_transient(
    step: Callable[[], T],
    *,
    what: str,
    stop: threading.Event,
    max_seconds: float,
) -> T:
    """Run ``step`` until it succeeds; on a transient database error wait and try again.

    Raises ``StopRequested`` when ``stop`` is set while waiting, and re-raises any other error.
    """
    backoff = Backoff(max_seconds=max_seconds)
    while True:
        try:
            return step()
        except Exception as error:
            if not is_transient(error):
                raise
            delay = backoff.next_delay()
            log.warning(
                "database unavailable while %s (attempt %d): %s; retrying in %.1f s",
                what,
                backoff.failures,
                _first_line(error),
                delay,
            )
            if stop.wait(delay):
                raise StopRequested(what) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
