"""Cron expressions and time zones: validation, due times across DST, and a description in words.

Parsing and next-time computation are cronsim's (the cron evaluator of healthchecks.io): it
follows Debian cron on daylight-saving nights, so a daily 02:30 in Europe/Berlin fires once at
03:00 on the spring-forward night (02:30 does not exist) and once at the first 02:30 on the
fall-back night (02:30 happens twice). Stored and compared times are UTC; the zone only decides
which instants match.

    >>> from datetime import datetime, UTC
    >>> cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    >>> cron.next_after(datetime(2026, 3, 28, 12, tzinfo=UTC)).isoformat()
    '2026-03-29T01:00:00+00:00'
    >>> cron.describe()
    'At 02:30 every day (Europe/Berlin)'
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = ["Cron", "CronError"]

_EXAMPLE = "use five fields: minute hour day-of-month month day-of-week, e.g. '30 2 * * *'"


class CronError(ValueError):
    """A bad ``cron`` or ``timezone`` value; ``field`` names which, ``detail`` the value and fix."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def _zone(name: str) -> ZoneInfo:
    if name != name.strip() or not name or name.startswith(("/", ".")):
        zone = None
    else:
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            zone = None
    if zone is None:
        raise CronError(
            "timezone",
            f"got {name!r}; use an IANA time zone name such as 'UTC', 'Europe/Berlin' or "
            "'America/New_York'",
        )
    return zone


def _check_expression(expression: str) -> None:
    fields = expression.split()
    if len(fields) != 5:
        raise CronError("cron", f"got {expression!r} ({len(fields)} fields); {_EXAMPLE}")
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise CronError("cron", f"got {expression!r}: {error}; {_EXAMPLE}") from None


@dataclass(frozen=True)
class Cron:
    """A valid five-field cron expression in an IANA zone (build it with ``Cron.parse``)."""

    expression: str
    timezone: str

    @classmethod
    def parse(cls, expression: str, timezone: str) -> Cron:
        """The schedule of ``expression`` in ``timezone``; CronError naming the bad one."""
        _check_expression(expression)
        _zone(timezone)
        return cls(expression=" ".join(expression.split()), timezone=timezone)

    @property
    def zone(self) -> ZoneInfo:
        """The zone as a tzinfo."""
        return ZoneInfo(self.timezone)

    def times_after(self, after: datetime) -> Iterator[datetime]:
        """Due times strictly after ``after`` (tz-aware), ascending, as UTC datetimes."""
        for due in CronSim(self.expression, after.astimezone(self.zone)):
            # On a fall-back night cronsim starts from the wall clock: from 02:10 in the second
            # pass of the hour it yields 02:30 of the first pass, before ``after``. Skip those.
            if due.astimezone(UTC) > after:
                yield due.astimezone(UTC)

    def next_after(self, after: datetime) -> datetime:
        """The first due time strictly after ``after``, in UTC."""
        due = next(self.times_after(after), None)
        if due is None:  # cronsim refuses impossible dates at parse time; this is a guard
            raise CronError("cron", f"{self.expression!r} is never due after {after.isoformat()}")
        return due

    def describe(self) -> str:
        """The expression in words with its zone, e.g. "At 02:30 every day (Europe/Berlin)"."""
        return f"{CronSim(self.expression, datetime.now(self.zone)).explain()} ({self.timezone})"
