"""``GET /metrics`` in Prometheus text format (prometheus-client).

Everything about jobs, trials and workers is read from the database at scrape time
(``DatabaseCollector``): every API process (replicas, or uvicorn worker processes) reports the same
values, nothing is lost when a process restarts, and counters stay monotonic because trial rows are
never deleted while their job exists. Only HTTP latency lives in the process: one histogram per
app, labelled by method, route template (never the raw path) and status. When
``PROMETHEUS_MULTIPROC_DIR`` is set (several processes behind one port), prometheus-client keeps
that histogram in files there and ``/metrics`` sums every process's files.

Metrics (all prefixed ``paretonas_``):
``jobs{state}``, ``queue_trials`` (trials still to hand out on active jobs), ``trials{state}``
(gauge: running), ``trials_finished_total{state}`` (complete | stopped_early | failed | stopped),
``trials_timed_out_total``, ``leases_expired_total``, ``trial_duration_seconds`` (histogram of
complete trials' training time), ``workers{state}`` (live | stale | stopped),
``worker_last_heartbeat_timestamp_seconds{worker,host,device}`` (workers not stopped),
``database_up``, ``http_request_duration_seconds{method,route,status}``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import Engine, case, func, select
from sqlalchemy.exc import SQLAlchemyError

from service.api.presence import read_presence
from service.db.claimable import takes_claims, trials_to_hand_out
from service.db.tables import JOB_STATUSES, Job, Trial
from service.worker.reasons import LEASE_EXPIRED, TIMED_OUT

__all__ = ["DURATION_BUCKETS", "DatabaseCollector", "HttpMetrics", "make_registry"]

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                    21600.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FINISHED = ("complete", "stopped_early", "failed", "stopped")
WORKERS_LISTED = 10_000  # one heartbeat series per worker seen in the last week (presence)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class DatabaseCollector(Collector):
    """Jobs, trials, queue, leases and workers, counted in the service database per scrape."""

    def __init__(self, engine: Engine, *, stale_after_seconds: float) -> None:
        self.engine = engine
        self.stale_after_seconds = stale_after_seconds

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: registering must not query the database."""
        return []

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("paretonas_database_up", "1 when the service database answered")
        try:
            families = self._from_database()
        except SQLAlchemyError:
            up.add_metric([], 0.0)
            return [up]
        up.add_metric([], 1.0)
        return [up, *families]

    def _from_database(self) -> list[Metric]:
        with self.engine.connect() as connection:
            jobs = dict(connection.execute(
                select(Job.status, func.count()).group_by(Job.status)).all())
            left = trials_to_hand_out()  # what the claim rule may still hand out
            queue = connection.execute(
                select(func.coalesce(func.sum(case((left > 0, left), else_=0)), 0))
                .where(takes_claims())
            ).scalar_one()
            trials = dict(connection.execute(
                select(Trial.state, func.count()).group_by(Trial.state)).all())
            expired, timed_out = connection.execute(select(
                func.count().filter(Trial.error.startswith(LEASE_EXPIRED)),
                func.count().filter(Trial.error.startswith(TIMED_OUT)),
            )).one()
            buckets = connection.execute(
                select(
                    *(func.coalesce(func.sum(case((Trial.train_seconds <= b, 1), else_=0)), 0)
                      for b in DURATION_BUCKETS),
                    func.count(),
                    func.coalesce(func.sum(Trial.train_seconds), 0.0),
                ).where(Trial.state == "complete", Trial.train_seconds.is_not(None))
            ).one()
            presence = read_presence(connection, stale_after_seconds=self.stale_after_seconds,
                                     limit=WORKERS_LISTED)
            connection.rollback()
        return [
            _gauge("paretonas_jobs", "Jobs by state", "state",
                   {s: jobs.get(s, 0) for s in JOB_STATUSES}),
            _gauge("paretonas_queue_trials",
                   "Trials still to hand out on queued and running jobs", None, {"": queue}),
            _gauge("paretonas_trials", "Trials now running", "state",
                   {"running": trials.get("running", 0)}),
            _counter("paretonas_trials_finished", "Trials finished, by how they ended", "state",
                     {s: trials.get(s, 0) for s in FINISHED}),
            _counter("paretonas_trials_timed_out",
                     "Trials failed by the per-trial wall-time limit", None, {"": timed_out}),
            _counter("paretonas_leases_expired",
                     "Trials whose lease expired (their worker was killed or cut off)", None,
                     {"": expired}),
            _histogram(buckets),
            _gauge("paretonas_workers", "Workers by state (live: seen within "
                   "PARETONAS_WORKER_STALE_SECONDS)", "state",
                   {s: sum(1 for w in presence.workers if w.state == s)
                    for s in ("live", "stale", "stopped")}),
            _heartbeats(presence.workers),
        ]


def _gauge(name: str, doc: str, label: str | None, values: dict[str, Any]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=[label] if label else None)
    for key, value in values.items():
        family.add_metric([key] if label else [], float(value))
    return family


def _counter(name: str, doc: str, label: str | None, values: dict[str, Any]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=[label] if label else None)
    for key, value in values.items():
        family.add_metric([key] if label else [], float(value))
    return family


def _histogram(row: Any) -> Metric:
    counts, total, seconds = list(row[:-2]), row[-2], row[-1]
    family = HistogramMetricFamily(
        "paretonas_trial_duration_seconds", "Training time of complete trials")
    cumulative = [(floatToGoString(bound), float(count))  # type: ignore[no-untyped-call]
                  for bound, count in zip(DURATION_BUCKETS, counts, strict=True)]
    family.add_metric([], [*cumulative, ("+Inf", float(total))], sum_value=float(seconds))
    return family


def _heartbeats(workers: Iterable[Any]) -> Metric:
    family = GaugeMetricFamily(
        "paretonas_worker_last_heartbeat_timestamp_seconds",
        "Unix time of each worker's last heartbeat (workers not stopped)",
        labels=["worker", "host", "device"])
    for worker in workers:
        if worker.state != "stopped":
            family.add_metric([worker.id, worker.hostname, worker.device],
                              worker.last_seen_at.timestamp())
    return family


class HttpMetrics:
    """ASGI middleware: request latency by method, route template and status."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry) -> None:
        self.app = app
        self.latency = Histogram(
            "paretonas_http_request_duration_seconds", "HTTP request latency",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            self.latency.labels(scope["method"], _route_template(scope), str(status)).observe(
                time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's full path template (``/api/v1/jobs/{job_id}``), else "unmatched"."""
    # FastAPI >= 0.16x keeps included routers nested: the full template is on its route context.
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    return str(template) if template else "unmatched"


def make_registry(engine: Engine, *, stale_after_seconds: float) -> tuple[
        CollectorRegistry, CollectorRegistry]:
    """(the registry ``/metrics`` renders, the one the HTTP histogram registers in).

    In multiprocess mode the histogram's own registry is only a home for it (its values go to
    files), and the rendered registry reads every process's files instead.
    """
    rendered = CollectorRegistry(auto_describe=True)
    rendered.register(DatabaseCollector(engine, stale_after_seconds=stale_after_seconds))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(rendered)  # type: ignore[no-untyped-call]
        return rendered, CollectorRegistry(auto_describe=True)
    return rendered, rendered
