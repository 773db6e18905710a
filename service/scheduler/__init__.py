"""Cron schedules -> jobs, exactly once per due time (the database decides).

``Scheduler`` (loop), ``fire_due`` / ``start_run`` (one due time), ``Cron`` (parsing, due times
across DST, words), ``CompressedClock`` (injectable time).
"""

from service.scheduler.clock import Clock, CompressedClock, system_clock
from service.scheduler.cron import Cron, CronError
from service.scheduler.fire import Firing, fire_due, start_run
from service.scheduler.loop import Scheduler

__all__ = [
    "Clock",
    "CompressedClock",
    "Cron",
    "CronError",
    "Firing",
    "Scheduler",
    "fire_due",
    "start_run",
    "system_clock",
]
