"""GPU workers: claim a trial under a lease, train it, record it; lose nothing when killed.

- ``database``: the worker's engine (SQLite: WAL, BEGIN IMMEDIATE; PostgreSQL: pre-ping).
- ``backoff``: retry a database step with capped exponential backoff instead of dying.
- ``claim``: pick a job with room (FOR UPDATE SKIP LOCKED / BEGIN IMMEDIATE), ask its study.
- ``recovery``: the retry/failure policy for lost, released or crashed trials.
- ``lease``: the heartbeat thread that renews a lease and watches for cancel / lost lease.
- ``record``: write a finished trial, the job counters, the Pareto members and hypervolume history.
- ``loop``: the worker loop (signals, ``--once``, polling); ``Worker.next_claim``, ``settle`` and
  ``release`` are shared with the Ray driver.
- ``ray_driver``, ``ray_task``, ``ray_room``: ``paretonas worker --ray``, one driver that claims
  as above and has a Ray cluster train the trials (Ray is imported only there, lazily).
"""

from __future__ import annotations

from service.worker.loop import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions"]
