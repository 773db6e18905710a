"""Process logging for the API and the workers: plain text, or one JSON object per line.

``PARETONAS_LOG_FORMAT=json`` turns every line into a JSON object (python-json-logger) with
``time``, ``level``, ``logger``, ``message`` and, where known, ``worker_id``, ``job_id`` and
``trial`` (the trial number). A worker sets the job and trial for the duration of a trial
(``trial_context``), so every line it writes about that trial carries them, also from its
heartbeat thread (``run_in_context``); lines about another job's trial (the reaper) pass them
with ``extra=trial_fields(...)``. Text lines show the same ids as ``[job=... trial=...]``.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

__all__ = [
    "LogFormat",
    "configure_logging",
    "make_handler",
    "set_worker_id",
    "trial_context",
    "trial_fields",
]

LogFormat = Literal["text", "json"]
FIELDS = ("worker_id", "job_id", "trial")

_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
_trial: contextvars.ContextVar[int | None] = contextvars.ContextVar("trial", default=None)
_worker: dict[str, str | None] = {"id": None}  # one worker per process


def set_worker_id(worker_id: str) -> None:
    """The id every line of this process carries from now on."""
    _worker["id"] = worker_id


@contextmanager
def trial_context(*, job_id: str, trial: int) -> Iterator[None]:
    """Lines logged inside (this thread, and threads started with a copy of the context) carry
    ``job_id`` and ``trial``."""
    job_token, trial_token = _job.set(job_id), _trial.set(trial)
    try:
        yield
    finally:
        _job.reset(job_token)
        _trial.reset(trial_token)


def trial_fields(job_id: str, trial: int) -> dict[str, Any]:
    """``extra=`` for a line about a trial outside its context (e.g. reaping another's trial)."""
    return {"job_id": job_id, "trial": trial}


class _Ids(logging.Filter):
    """Adds worker_id, job_id and trial to every record (an explicit ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "worker_id"):
            record.worker_id = _worker["id"]
        if not hasattr(record, "job_id"):
            record.job_id = _job.get()
        if not hasattr(record, "trial"):
            record.trial = _trial.get()
        ids = " ".join(f"{k}={getattr(record, k)}" for k in ("job_id", "trial")
                       if getattr(record, k) is not None)
        record.ids = f" [{ids.replace('job_id=', 'job=')}]" if ids else ""
        return True


class _Json(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key in ("ids", *FIELDS):
            if log_data.get(key) is None:
                log_data.pop(key, None)
        return log_data


def make_handler(fmt: LogFormat = "text", *, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing ``fmt`` lines (with the ids) to ``stream`` (default stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_Ids())
    if fmt == "json":
        handler.setFormatter(_Json(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, "taskName", "color_message", "ids"],
        ))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s"))
    return handler


def configure_logging(fmt: LogFormat = "text", *, level: str = "INFO") -> None:
    """One stderr handler on the root logger (replacing any), in ``fmt``."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(fmt))
    root.setLevel(level)
