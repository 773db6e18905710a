"""The scheduler's clock, injectable: the real one, or compressed time for tests and drills.

A ``CompressedClock`` maps real seconds since ``epoch`` (a Unix time) onto simulated time from
``origin`` at ``speed`` times real time; every process given the same three values reads the same
simulated time, so two scheduler processes can race over hours of due times in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.db.base import utcnow

__all__ = ["Clock", "CompressedClock", "system_clock"]

Clock = Callable[[], datetime]
system_clock: Clock = utcnow


@dataclass(frozen=True)
class CompressedClock:
    """``origin + speed * (time.time() - epoch)`` seconds (tz-aware ``origin``)."""

    origin: datetime
    epoch: float
    speed: float

    def __post_init__(self) -> None:
        if self.origin.tzinfo is None:
            raise ValueError(f"origin {self.origin.isoformat()} needs a time zone, e.g. +00:00")
        if self.speed <= 0:
            raise ValueError(f"speed must be > 0; got {self.speed}")

    def __call__(self) -> datetime:
        return self.origin + timedelta(seconds=self.speed * (time.time() - self.epoch))
