"""The worker loop: reap lost trials, claim one, train it under a lease, record it; repeat.

Signals: SIGTERM (and Ctrl-C) set ``stop``: training stops after the current epoch, the trial is
released (failed and retried at once, so nobody waits for its lease) and the process exits 0.
SIGKILL loses nothing either: the lease expires and the next reaper retries the trial.
A database that goes away is waited for with capped exponential backoff (``backoff``).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

from sqlalchemy import ColumnElement

from search import engine as search_engine
from search.engine import TrialOutcome
from search.training import EpochReport
from service.logs import trial_context
from service.worker.backoff import Backoff, StopRequested, retry_transient
from service.worker.claim import Claim, claim_next
from service.worker.context import WorkerContext
from service.worker.database import write_transaction
from service.worker.lease import Heartbeat
from service.worker.presence import Presence
from service.worker.reasons import RELEASED
from service.worker.record import LeaseLost, record_complete, record_stopped
from service.worker.recovery import (
    LostTrial,
    fail_and_retry,
    lock_job,
    reap_expired,
    settle_cancelled,
    timed_out_reason,
)

__all__ = ["Worker", "WorkerOptions"]

log = logging.getLogger("paretonas.worker")

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerOptions:
    """How the loop runs: one trial then exit (``once``), and the idle poll interval."""

    once: bool = False
    poll_seconds: float = 2.0


class Worker:
    """One worker process: ``run()`` until stopped (or after one trial with ``once``)."""

    def __init__(self, ctx: WorkerContext, options: WorkerOptions) -> None:
        self.ctx = ctx
        self.options = options
        # Recording a finished trial is retried until the database answers, even while stopping.
        self._never = threading.Event()
        self.presence: Presence | None = None

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the worker after the current epoch (main thread only)."""

        def _stop(signum: int, _frame: FrameType | None) -> None:
            if not self.ctx.stop.is_set():
                log.info(
                    "%s: finishing the current epoch, then releasing the trial",
                    signal.Signals(signum).name,
                )
            self.ctx.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def run(self) -> int:
        """Work until stopped; returns the process exit code (0)."""
        log.info("worker %s started on %s", self.ctx.worker_id, self.ctx.device)
        with Presence(self.ctx) as presence:  # the worker's own heartbeat, for its whole life
            self.presence = presence
            self._work()
        log.info("worker %s stopped", self.ctx.worker_id)
        return 0

    def _work(self) -> None:
        errors = Backoff(max_seconds=self.ctx.db_retry_max_seconds)
        while not self.ctx.stop.is_set():
            try:
                claim = self.next_claim()
            except StopRequested:
                break
            except Exception:
                # Not a lost database (that is retried inside): e.g. two workers creating a fresh
                # Optuna schema at once. Log it, wait, try again; a worker never dies of it.
                delay = errors.next_delay()
                log.exception("claiming a trial failed; trying again in %.1f s", delay)
                self.ctx.stop.wait(delay)
                continue
            errors.reset()
            if claim is None:
                self.ctx.stop.wait(self.options.poll_seconds)
                continue
            try:
                self.run_claim(claim)
            except Exception:
                # The trial's lease expires and any worker retries it (recovery).
                log.exception("job %s trial %d: unexpected error", claim.job.job_id, claim.number)
            if self.options.once:
                break

    def next_claim(self, *, fits: ColumnElement[bool] | None = None) -> Claim | None:
        """Reap expired leases, end cancelled jobs, then claim a trial (of a job that ``fits``)."""
        self._retry(
            lambda: reap_expired(self.ctx), what="reaping expired leases", stop=self.ctx.stop
        )
        self._retry(
            lambda: settle_cancelled(self.ctx), what="ending cancelled jobs", stop=self.ctx.stop
        )
        return self._retry(
            lambda: claim_next(self.ctx, fits=fits), what="claiming a trial", stop=self.ctx.stop
        )

    def run_claim(self, claim: Claim) -> None:
        """Train one claimed trial under its lease, then record, stop or release it.

        Every line logged meanwhile carries the job id and trial number (``service.logs``)."""
        if self.presence is not None:
            self.presence.working_on(job_id=claim.job.job_id, trial_number=claim.number)
        try:
            with trial_context(job_id=claim.job.job_id, trial=claim.number):
                self._run_claim(claim)
        finally:
            if self.presence is not None:
                self.presence.working_on(job_id=None, trial_number=None)

    def _run_claim(self, claim: Claim) -> None:
        job = claim.job
        outcome: TrialOutcome | None = None
        reason = ""
        epochs: list[EpochReport] = []
        with Heartbeat(
            self.ctx, trial_id=claim.trial_id, job_id=job.job_id, number=claim.number
        ) as heartbeat:
            try:
                outcome = search_engine.run_ticket(
                    ticket=claim.ticket,
                    config=job.config,
                    splits=job.splits,
                    device=self.ctx.device,
                    on_epoch=lambda report: (
                        _note(epochs, report)
                        and heartbeat.note_epoch(report)
                        and heartbeat.keep_going()
                    ),
                )
            except Exception as error:
                log.exception("job %s trial %d: training raised", job.job_id, claim.number)
                reason = f"training raised {type(error).__name__}: {error}"
        self.settle(
            claim, outcome=outcome, reason=reason, heartbeat=heartbeat, epoch=_epoch_text(epochs)
        )

    def settle(
        self,
        claim: Claim,
        *,
        outcome: TrialOutcome | None,
        reason: str,
        heartbeat: Heartbeat,
        epoch: str,
    ) -> None:
        """After training (its heartbeat closed): record, stop or release the trial, or fail it.

        ``outcome`` None: training failed for ``reason`` (retried under the retry limit);
        ``epoch``: the last epoch trained ("3/10"), for the log. Shared with the Ray driver.
        """
        job = claim.job
        if heartbeat.lease_lost.is_set():
            log.warning(
                "job %s trial %d: lease lost, dropping the result (it is retried)",
                job.job_id,
                claim.number,
            )
            return
        if outcome is None:
            self._fail(claim, reason=reason, always_retry=False)
        elif outcome.state in ("complete", "stopped_early"):
            self._record(claim, outcome, epochs=heartbeat.unwritten())
        elif heartbeat.timed_out.is_set() and not heartbeat.cancelled.is_set():
            limit = self.ctx.trial_max_seconds or 0.0
            reason = timed_out_reason(
                limit=limit, seconds=heartbeat.elapsed(), epochs=epoch
            )
            self._fail(claim, reason=reason, always_retry=False, never_retry=True)
        elif heartbeat.cancelled.is_set():
            self._retry(
                lambda: search_engine.tell(ref=job.ref, outcome=outcome),
                what="telling the study",
                stop=self._never,
            )
            unwritten = heartbeat.unwritten()
            status = self._retry(
                lambda: record_stopped(
                    self.ctx,
                    claim=claim,
                    reason="job cancelled or ended",
                    outcome=outcome,
                    epochs=unwritten,
                ),
                what="recording a stopped trial",
                stop=self._never,
            )
            log.info(
                "job %s trial %d stopped after epoch %s (job %s)",
                job.job_id,
                claim.number,
                epoch,
                status,
            )
        else:
            log.info("job %s trial %d released after epoch %s", job.job_id, claim.number, epoch)
            self.release(claim)

    def release(self, claim: Claim) -> None:
        """Give a trial back on shutdown: failed and retried at once, whatever its attempt."""
        self._fail(
            claim,
            reason=f"{RELEASED} {self.ctx.worker_id} on shutdown",
            always_retry=True,
        )

    def _record(
        self, claim: Claim, outcome: TrialOutcome, *, epochs: list[EpochReport]
    ) -> None:
        job = claim.job
        # The service's row first, then the study: a lease lost in between (the database away
        # for longer than the lease) leaves the study trial as the reaper told it, FAIL with a
        # retry queued. Told COMPLETE first, the retry was then taken for a duplicate of it and
        # the architecture never reached the stored front.
        try:
            recorded = self._retry(
                lambda: record_complete(self.ctx, claim=claim, outcome=outcome, epochs=epochs),
                what="recording a trial",
                stop=self._never,
            )
        except LeaseLost as error:
            log.warning("%s; result dropped (the trial is retried)", error)
            return
        self._retry(
            lambda: search_engine.tell(ref=job.ref, outcome=outcome),
            what="telling the study",
            stop=self._never,
        )
        hv = "-" if recorded.hypervolume is None else f"{recorded.hypervolume:.4f}"
        log.info(
            "trial job=%s number=%d attempt=%d val_accuracy=%.4f test_accuracy=%.4f params=%d "
            "seconds=%.1f front=%d hypervolume=%s complete=%d/%d job=%s",
            job.job_id,
            claim.number,
            claim.attempt,
            outcome.val_accuracy,
            outcome.test_accuracy,
            outcome.params,
            outcome.train_seconds,
            recorded.front_size,
            hv,
            recorded.n_complete,
            job.n_trials,
            recorded.job_status,
        )

    def _fail(
        self, claim: Claim, *, reason: str, always_retry: bool, never_retry: bool = False
    ) -> None:
        lost = LostTrial(
            trial_id=claim.trial_id,
            job_id=claim.job.job_id,
            number=claim.number,
            attempt=claim.attempt,
            reason=reason,
        )

        def step() -> bool:
            with write_transaction(self.ctx.engine) as connection:
                lock_job(connection, job_id=lost.job_id)
                return fail_and_retry(
                    connection,
                    ctx=self.ctx,
                    ref=claim.job.ref,
                    trial=lost,
                    always_retry=always_retry,
                    never_retry=never_retry,
                )

        self._retry(step, what="releasing a trial", stop=self._never)

    def _retry(self, step: Callable[[], T], *, what: str, stop: threading.Event) -> T:
        return retry_transient(
            step, what=what, stop=stop, max_seconds=self.ctx.db_retry_max_seconds
        )


def _note(epochs: list[EpochReport], report: EpochReport) -> bool:
    """Keep the last epoch report (for the log); always True."""
    epochs[:] = [report]
    return True


def _epoch_text(epochs: list[EpochReport]) -> str:
    return f"{epochs[-1].epoch}/{epochs[-1].epochs_total}" if epochs else "0"
