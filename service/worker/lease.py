"""Hold a trial's lease: a heartbeat thread on its own connection renews it and watches the job.

Every ``heartbeat_seconds`` the thread moves ``lease_expires_at`` to now + ``lease_seconds`` (only
while the row is still this worker's running trial) and reads the job's ``cancel_requested`` and
status. The training loop asks ``keep_going()`` after every epoch, which also reads the job's flag
and status itself (one primary-key read, no write lock on SQLite; at most every
``cancel_check_seconds``, 0.25 s, so epochs of a few milliseconds do not pay a read each), so a
cancel, a failed job or a lost lease stops training at the end of the current epoch (of an epoch
shorter than 0.25 s: within 0.25 s), not within one heartbeat. ``keep_going()`` also
enforces the per-trial wall-time limit (``trial_max_seconds``): past it, training stops and
``timed_out`` is set (the worker fails the trial for good).

The same transaction writes the learning-curve epochs finished since the last renewal
(``note_epoch`` collects them; ``trial_epochs``): a curve costs no commit of its own, and what is
still unwritten when training ends goes with the trial's result (``unwritten()``).

The lease is lost when the renewing update touches no row (another worker reaped the trial) or when
the database stayed away until the lease ran out: training stops and nothing is recorded, because
the trial has been (or will be) failed and retried elsewhere.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from service.db.engine import deferred
from service.db.tables import Job, Trial, TrialEpoch
from service.worker.backoff import is_transient
from service.worker.context import WorkerContext
from service.worker.database import utcnow

if TYPE_CHECKING:
    from search.training import EpochReport

__all__ = ["Heartbeat", "write_epochs"]

log = logging.getLogger("paretonas.worker")


def write_epochs(
    connection: Connection, *, job_id: str, number: int, epochs: list[EpochReport]
) -> None:
    """Insert a trial's epoch reports into ``trial_epochs`` in the caller's transaction.

    An epoch already stored is left as it is (ON CONFLICT DO NOTHING): a renewal whose commit
    went through but whose answer was lost may hand the same epochs in again.
    """
    if not epochs:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    rows = [
        {
            "job_id": job_id,
            "trial_number": number,
            "epoch": report.epoch,
            "phase": report.phase,
            "train_loss": report.train_loss,
            "val_accuracy": report.val_accuracy,
            "lr": report.lr,
            "seconds": report.seconds,
        }
        for report in epochs
    ]
    connection.execute(dialect.insert(TrialEpoch).on_conflict_do_nothing(), rows)


class Heartbeat(threading.Thread):
    """Renews one trial's lease until ``close()``; a context manager that starts and stops it."""

    def __init__(self, ctx: WorkerContext, *, trial_id: int, job_id: str, number: int) -> None:
        super().__init__(name=f"heartbeat-{trial_id}", daemon=True)
        self.ctx = ctx
        self.trial_id = trial_id
        self.job_id = job_id
        self.number = number
        self._epochs: list[EpochReport] = []  # finished, not yet written
        self._epochs_lock = threading.Lock()
        self.lease_lost = threading.Event()
        self.cancelled = threading.Event()
        self.timed_out = threading.Event()
        self._closed = threading.Event()
        self._renewed_at = time.monotonic()
        self._started_at = time.monotonic()
        self._checked_at = -float("inf")
        self._reader = deferred(ctx.engine)
        self._log_context = contextvars.copy_context()  # the trial's job and number

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop renewing (the caller records or releases the trial next)."""
        self._closed.set()
        if self.is_alive():
            self.join(timeout=self.ctx.heartbeat_seconds + 10)

    def note_epoch(self, report: EpochReport) -> bool:
        """Keep an epoch report for the next write; always True (an ``on_epoch`` helper)."""
        with self._epochs_lock:
            self._epochs.append(report)
        return True

    def unwritten(self) -> list[EpochReport]:
        """The epochs no renewal has written; call after ``close()``, write them with the result."""
        with self._epochs_lock:
            return list(self._epochs)

    def keep_going(self) -> bool:
        """False once the worker stops, the job is cancelled or ended, the lease is lost or the
        trial ran past ``trial_max_seconds``. Called after every epoch."""
        self._check_local_expiry()
        self._check_job()
        limit = self.ctx.trial_max_seconds
        if limit is not None and time.monotonic() - self._started_at > limit:
            if not self.timed_out.is_set():
                log.warning("trial row %d: past the wall-time limit of %g s", self.trial_id, limit)
            self.timed_out.set()
        return not (
            self.ctx.stop.is_set()
            or self.cancelled.is_set()
            or self.lease_lost.is_set()
            or self.timed_out.is_set()
        )

    def elapsed(self) -> float:
        """Seconds since the trial started under this heartbeat."""
        return time.monotonic() - self._started_at

    def _check_job(self) -> None:
        """Read the job's cancel flag and status now (a lost database: keep training)."""
        now = time.monotonic()
        if self.cancelled.is_set() or now - self._checked_at < self.ctx.cancel_check_seconds:
            return
        self._checked_at = now
        try:
            with self._reader.connect() as connection:
                job = connection.execute(
                    select(Job.status, Job.cancel_requested).where(Job.id == self.job_id)
                ).one()
                connection.rollback()
        except Exception as error:
            if not is_transient(error):
                raise
            return  # the heartbeat logs a lost database and watches the lease
        if job.cancel_requested or job.status not in ("queued", "running"):
            self.cancelled.set()

    def run(self) -> None:
        self._log_context.run(self._beat_until_closed)

    def _beat_until_closed(self) -> None:
        while not self._closed.wait(self.ctx.heartbeat_seconds):
            try:
                self.beat()
            except Exception as error:
                if not is_transient(error):
                    log.exception("heartbeat of trial row %d failed", self.trial_id)
                else:
                    log.warning("heartbeat of trial row %d: database unavailable", self.trial_id)
            self._check_local_expiry()
            if self.lease_lost.is_set():
                return

    def beat(self) -> None:
        """Renew the lease once (writing the epochs finished since the last renewal) and read
        the job's cancel flag and status."""
        now = utcnow()
        with self._epochs_lock:
            pending = list(self._epochs)
        with self.ctx.engine.begin() as connection:
            renewed = connection.execute(
                update(Trial)
                .where(
                    Trial.id == self.trial_id,
                    Trial.state == "running",
                    Trial.worker_id == self.ctx.worker_id,
                )
                .values(
                    lease_expires_at=now + timedelta(seconds=self.ctx.lease_seconds),
                    heartbeat_at=now,
                )
            ).rowcount
            if renewed == 1:
                write_epochs(connection, job_id=self.job_id, number=self.number, epochs=pending)
            job = connection.execute(
                select(Job.status, Job.cancel_requested).where(Job.id == self.job_id)
            ).one()
        if renewed != 1:
            log.warning("trial row %d: lease lost (reaped by another worker)", self.trial_id)
            self.lease_lost.set()
            return
        self._renewed_at = time.monotonic()
        with self._epochs_lock:
            del self._epochs[: len(pending)]  # committed: never written twice
        if job.cancel_requested or job.status not in ("queued", "running"):
            self.cancelled.set()

    def _check_local_expiry(self) -> None:
        # Without a renewal for a whole lease, another worker may already run the retry.
        if time.monotonic() - self._renewed_at > self.ctx.lease_seconds:
            if not self.lease_lost.is_set():
                log.warning("trial row %d: lease ran out without a renewal", self.trial_id)
            self.lease_lost.set()
