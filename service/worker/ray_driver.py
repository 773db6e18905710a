"""The Ray driver: one process claims trials like a worker and has a Ray cluster train them.

``paretonas worker --ray ADDRESS`` runs ``RayDriver``. It uses the plain worker's code for
everything the database decides (``Worker.next_claim``: reap expired leases, end cancelled jobs,
claim under the job's budget and parallelism; ``Heartbeat``: one lease renewed per trial in
flight; ``Worker.settle`` / ``Worker.release``: record, stop, fail-and-retry or release), and Ray
only for placing and running the training (``ray_task.run_trial``, one task per trial, with the
job's ``num_cpus``/``num_gpus``). Trials are claimed while a job's trial fits the cluster's free
resources (``ray_room``), so the trials in flight follow the cluster and the jobs' parallelism.

Failure semantics are the service's, not Ray's:

- Ray's own retries are off (``max_retries=0``, ``retry_exceptions=False``): a Ray worker or node
  that dies mid-trial fails that trial, which is retried under ``max_trial_retries``.
- SIGKILL of the driver loses nothing: Ray ends the tasks and actor of a dead driver, the leases
  expire, and any worker or driver reaps and retries the trials.
- SIGTERM (or Ctrl-C): no new claims; every trial in flight stops after its current epoch (one
  not started yet is cancelled) and is released (failed and retried at once); exit 0.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from service.db.tables import Job
from service.worker.backoff import Backoff, StopRequested
from service.worker.claim import Claim
from service.worker.context import WorkerContext
from service.worker.lease import Heartbeat
from service.worker.loop import Worker, WorkerOptions
from service.worker.presence import Presence
from service.worker.ray_failures import describe_failure
from service.worker.ray_room import Released, Resources, Room, demand, free_room
from service.worker.ray_task import TaskResult, TrialSignals, run_trial

__all__ = ["RayDriver", "connect"]

log = logging.getLogger("paretonas.worker")

MAX_CLAIMS_PER_PASS = 64  # bounds one pass of claims; the next pass claims on
DEMAND_SECONDS = 10.0  # how often the autoscaler is told what the jobs could run
SPLITS_KEPT = 4  # idle jobs whose splits stay in Ray's object store for their next trials
RELEASE_GRACE_SECONDS = 5.0  # on shutdown, a trial still waiting for a slot after this is cancelled


def connect(address: str) -> Any:
    """``ray.init`` on ``address`` ("auto", "host:6379"; ray:// Ray Client is untested).

    Raises ImportError without the ray extra and ConnectionError when no cluster answers.
    """
    import ray

    ray.init(address=address, namespace="paretonas", logging_level=logging.WARNING)
    return ray


@dataclass
class InFlight:
    """A claimed trial whose Ray task runs (or waits to be placed)."""

    claim: Claim
    ref: Any
    heartbeat: Heartbeat
    resources: Resources
    stop_sent: bool = False  # asked to stop after its epoch (a cancel, an ended job, lost lease)
    released_at: float | None = None  # when it was released on shutdown (time.monotonic())
    cancelled: bool = False  # cancelled before it began, on shutdown: released, not failed


@dataclass
class RayDriver:
    """Claims, places, watches and settles trials until stopped; ``run()`` returns 0."""

    ctx: WorkerContext
    options: WorkerOptions
    ray: Any
    worker: Worker = field(init=False)
    in_flight: dict[Any, InFlight] = field(default_factory=dict)
    _released: list[Released] = field(default_factory=list)
    _resources: dict[str, Resources] = field(default_factory=dict)
    _splits: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.worker = Worker(self.ctx, self.options)  # the shared claim / settle code
        self._errors = Backoff(max_seconds=self.ctx.db_retry_max_seconds)
        self._signals: Any = None
        self._task: Any = None
        self._demand_at = -DEMAND_SECONDS
        self.presence = Presence(self.ctx)  # the driver's row in ``workers``, started by run()

    def run(self) -> int:
        """Work until stopped (SIGTERM), then release what is in flight; returns 0."""
        ray = self.ray
        self._signals = ray.remote(num_cpus=0)(TrialSignals).remote()
        self._task = ray.remote(run_trial)
        total = ray.cluster_resources()
        log.info(
            "ray driver %s started: cluster of %g CPUs, %g GPUs",
            self.ctx.worker_id,
            total.get("CPU", 0.0),
            total.get("GPU", 0.0),
        )
        # The driver's own row in ``workers`` (what /readyz and a job's "no worker has been seen"
        # warning read): a Ray-only deployment has no other worker process.
        self.presence.start()
        try:
            while True:
                stopping = self.ctx.stop.is_set()
                if not stopping:
                    self._request_demand()
                    self._claim_while_room()
                self._send_stops(stopping=stopping)
                if not self.in_flight:
                    if stopping or self.ctx.stop.is_set():
                        break
                    self.ctx.stop.wait(self.options.poll_seconds)
                    continue
                self._collect(timeout=self.options.poll_seconds)
        finally:
            for flight in self.in_flight.values():  # only after an unexpected error
                flight.heartbeat.close()  # the leases expire; any worker retries the trials
            self.presence.close()
        log.info("ray driver %s stopped", self.ctx.worker_id)
        return 0

    def room(self) -> Room:
        """The cluster's room for new trials now (``ray_room.free_room``)."""
        ray = self.ray
        now = time.monotonic()
        self._released = [r for r in self._released if now - r.at < 10.0]
        return free_room(
            total=ray.cluster_resources(),
            available=ray.available_resources(),
            nodes=[node["Resources"] for node in ray.nodes() if node.get("Alive")],
            held=[flight.resources for flight in self.in_flight.values()],
            released=self._released,
            now=now,
        )

    def _request_demand(self) -> None:
        """Every ``DEMAND_SECONDS``: ask Ray's autoscaler (if any) for the jobs' trials."""
        if time.monotonic() - self._demand_at < DEMAND_SECONDS:
            return
        self._demand_at = time.monotonic()
        try:
            with self.ctx.engine.connect() as connection:
                bundles = demand(connection)
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=bundles)
        except Exception:
            log.warning("could not tell the autoscaler the jobs' demand", exc_info=True)

    def _claim_while_room(self) -> None:
        for _ in range(MAX_CLAIMS_PER_PASS):
            room = self.room()
            if room.empty:
                return
            try:
                claim = self.worker.next_claim(fits=room.fits())
            except StopRequested:
                return
            except Exception:
                delay = self._errors.next_delay()
                log.exception("claiming a trial failed; trying again in %.1f s", delay)
                self.ctx.stop.wait(delay)
                return
            self._errors.reset()
            if claim is None:
                return
            self._submit(claim)

    def _submit(self, claim: Claim) -> None:
        job = claim.job
        resources = self._job_resources(job.job_id)
        heartbeat = Heartbeat(
            self.ctx, trial_id=claim.trial_id, job_id=job.job_id, number=claim.number
        )
        heartbeat.start()
        try:
            if job.job_id not in self._splits:
                self._splits[job.job_id] = self.ray.put(job.splits)
            ref = self._task.options(
                **resources.ray_options(),
                max_retries=0,
                retry_exceptions=False,
                name=f"paretonas-trial {job.job_id} #{claim.number}",
            ).remote(
                ticket=claim.ticket,
                config=job.config,
                splits=[self._splits[job.job_id]],
                signals=self._signals,
                key=claim.trial_id,
            )
        except Exception as error:
            heartbeat.close()
            reason = f"placing the trial on Ray failed: {type(error).__name__}: {error}"
            log.exception("job %s trial %d: %s", job.job_id, claim.number, reason)
            self._guarded(
                lambda: self.worker.settle(
                    claim, outcome=None, reason=reason, heartbeat=heartbeat, epoch="0"
                ),
                claim=claim,
            )
            return
        self.in_flight[ref] = InFlight(
            claim=claim, ref=ref, heartbeat=heartbeat, resources=resources
        )
        self._note_doing()
        log.info(
            "job %s trial %d (attempt %d) placed on Ray: %g CPUs, %g GPUs",
            job.job_id,
            claim.number,
            claim.attempt,
            resources.cpus,
            resources.gpus,
        )

    def _job_resources(self, job_id: str) -> Resources:
        """A job's per-trial resources (they never change: read once per job)."""
        if job_id not in self._resources:
            with self.ctx.engine.connect() as connection:
                row = connection.execute(
                    select(Job.cpus_per_trial, Job.gpus_per_trial).where(Job.id == job_id)
                ).one()
            self._resources[job_id] = Resources(cpus=row.cpus_per_trial, gpus=row.gpus_per_trial)
        return self._resources[job_id]

    def _send_stops(self, *, stopping: bool) -> None:
        """Stop the tasks of cancelled, ended or lost trials; on shutdown release them all."""
        if stopping:
            self._release_all()
        doomed = [
            f for f in self.in_flight.values() if not f.stop_sent and not f.heartbeat.keep_going()
        ]
        for flight in doomed:
            flight.stop_sent = True
        if doomed:
            self._signals.stop.remote([f.claim.trial_id for f in doomed])

    def _release_all(self) -> None:
        """On shutdown: release every trial; cancel those that waited ``RELEASE_GRACE_SECONDS``
        for a slot and still have not begun (a task cancelled while it waits never trains)."""
        now = time.monotonic()
        fresh = [f for f in self.in_flight.values() if f.released_at is None]
        if fresh:
            for flight in fresh:
                flight.released_at = now
            self._signals.release.remote([f.claim.trial_id for f in fresh])
        overdue = [
            f
            for f in self.in_flight.values()
            if not f.cancelled
            and f.released_at is not None
            and now - f.released_at > RELEASE_GRACE_SECONDS
        ]
        if not overdue:
            return
        keys = [f.claim.trial_id for f in overdue]
        unstarted = set(self.ray.get(self._signals.release.remote(keys)))
        for flight in overdue:
            if flight.claim.trial_id in unstarted:
                flight.cancelled = True
                self.ray.cancel(flight.ref)

    def _collect(self, *, timeout: float) -> None:
        refs = list(self.in_flight)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            self._settle(self.in_flight.pop(ref))
        if ready:
            self._note_doing()

    def _note_doing(self) -> None:
        """The presence row names the trial placed last of those in flight (None: idle)."""
        latest = next(reversed(self.in_flight.values()), None)
        if latest is None:
            self.presence.working_on(job_id=None, trial_number=None)
        else:
            claim = latest.claim
            self.presence.working_on(job_id=claim.job.job_id, trial_number=claim.number)

    def _settle(self, flight: InFlight) -> None:
        claim = flight.claim
        flight.heartbeat.close()
        self._drop_splits(keep=claim.job.job_id)
        self._released.append(Released(resources=flight.resources, at=time.monotonic()))
        self._signals.forget.remote(claim.trial_id)
        try:
            result: TaskResult = self.ray.get(flight.ref)
        except Exception as error:
            if flight.cancelled:
                self._release(flight, epoch="0")
                return
            reason = describe_failure(self.ray, error)
            log.warning("job %s trial %d: %s", claim.job.job_id, claim.number, reason)
            self._guarded(
                lambda: self.worker.settle(
                    claim, outcome=None, reason=reason, heartbeat=flight.heartbeat, epoch="?"
                ),
                claim=claim,
            )
            return
        if result.outcome is None:
            self._release(flight, epoch=result.epoch)
            return
        outcome = result.outcome
        self._guarded(
            lambda: self.worker.settle(
                claim, outcome=outcome, reason="", heartbeat=flight.heartbeat, epoch=result.epoch
            ),
            claim=claim,
        )

    def _drop_splits(self, *, keep: str) -> None:
        """Let Ray free the splits of jobs with no trial in flight, past ``SPLITS_KEPT`` jobs."""
        busy = {flight.claim.job.job_id for flight in self.in_flight.values()} | {keep}
        for job_id in [j for j in self._splits if j not in busy][: -SPLITS_KEPT or None]:
            del self._splits[job_id]

    def _release(self, flight: InFlight, *, epoch: str) -> None:
        claim = flight.claim
        log.info(
            "job %s trial %d released after epoch %s", claim.job.job_id, claim.number, epoch
        )
        self._guarded(lambda: self.worker.release(claim), claim=claim)

    @staticmethod
    def _guarded(step: Any, *, claim: Claim) -> None:
        try:
            step()
        except Exception:
            # As in the plain worker: the trial's lease expires and any worker retries it.
            log.exception("job %s trial %d: unexpected error", claim.job.job_id, claim.number)
