"""`paretonas scheduler`: turn due cron schedules into jobs until stopped.

    paretonas scheduler                     # what `paretonas serve` runs in a thread, on its own
    paretonas scheduler --poll-seconds 1

Any number of schedulers (and `paretonas serve` processes) may share one database: each due time
becomes exactly one run, decided by the database. SIGTERM or Ctrl-C stops it after the current
tick. ``--clock-origin/--clock-epoch/--clock-speed`` (hidden) run it on compressed time.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from typing import Annotated

import typer

from service.commands.migrated import check_migrated
from service.db.engine import make_engine
from service.scheduler.clock import Clock, CompressedClock, system_clock
from service.scheduler.loop import Scheduler
from service.settings import get_settings

__all__ = ["scheduler"]


def scheduler(
    poll_seconds: Annotated[
        float | None, typer.Option(min=0.001, help="Seconds between ticks (default: settings).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="What runs record as fired_by (default: host:pid).")
    ] = None,
    clock_origin: Annotated[str | None, typer.Option(hidden=True)] = None,
    clock_epoch: Annotated[float | None, typer.Option(hidden=True)] = None,
    clock_speed: Annotated[float, typer.Option(hidden=True)] = 1.0,
) -> None:
    """Fire due cron schedules as jobs (exactly once per due time) until SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = get_settings()
    check_migrated(settings.database_url)
    clock = _clock(clock_origin, clock_epoch, clock_speed)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    engine = make_engine(settings.database_url)
    try:
        Scheduler(engine, settings, clock=clock, name=name, poll_seconds=poll_seconds).run(stop)
    finally:
        engine.dispose()


def _clock(origin: str | None, epoch: float | None, speed: float) -> Clock:
    if origin is None:
        return system_clock
    try:
        start = datetime.fromisoformat(origin)
        return CompressedClock(origin=start, epoch=epoch or 0.0, speed=speed)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--clock-origin") from None
