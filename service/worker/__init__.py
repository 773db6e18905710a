"""GPU workers: claim a trial under a lease, train it, record it; lose nothing when killed.

- ``database``: the worker's engine (SQLite: WAL, BEGIN IMMEDIATE; PostgreSQL: pre-ping).
- ``backoff``: retry a database step with capped exponential backoff instead of dying.
- ``claim``: pick a job with room (FOR UPDATE SKIP LOCKED / BEGIN IMMEDIATE), ask its study.
- ``recovery``: the retry/failure policy for lost, released or crashed trials.
- ``lease``: the heartbeat thread that renews a lease and watches for cancel / lost lease.
- ``record``: write a finished trial, the job counters, the Pareto members and hypervolume history.
- ``loop``: the worker loop (signals, ``--once``, polling).
"""

from __future__ import annotations

from service.worker.loop import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions"]
