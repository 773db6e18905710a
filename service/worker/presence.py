"""A worker's presence: its row in ``workers``, renewed every ``heartbeat_seconds`` by a thread.

The thread runs for the whole life of the process (idle polling, loading a dataset, training,
waiting for a lost database), on its own connection, so ``last_seen_at`` says the process is alive
whatever the loop is doing; ``job_id``/``trial_number`` say what it runs now. A clean exit sets
``stopped_at``; a killed worker simply stops being seen. Rows of workers not seen for
``FORGET_AFTER`` are deleted when a worker starts, so the table stays small.

The API reads the table (``service.api.workers``) for ``/readyz``, ``/metrics`` and the
"no worker has been seen for N s" warning of a job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, insert, update

from service.db.tables import Worker as WorkerRow
from service.worker.backoff import is_transient
from service.worker.context import WorkerContext
from service.worker.database import utcnow

__all__ = ["FORGET_AFTER", "Doing", "Presence"]

log = logging.getLogger("paretonas.worker")

FORGET_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class Doing:
    """What the worker runs now (None: idle)."""

    job_id: str | None = None
    trial_number: int | None = None


class Presence(threading.Thread):
    """Writes the worker's row every ``heartbeat_seconds`` until ``close()``; a context manager."""

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(name="presence", daemon=True)
        self.ctx = ctx
        self.doing = Doing()
        self._closed = threading.Event()
        self._announced = False

    def __enter__(self) -> Presence:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def working_on(self, *, job_id: str | None, trial_number: int | None) -> None:
        """Note the trial now running (or None, None when it ended); written at the next beat."""
        self.doing = Doing(job_id=job_id, trial_number=trial_number)

    def close(self) -> None:
        """Stop beating and mark the row stopped (best effort: a lost database keeps it as is)."""
        self._closed.set()
        if self.is_alive():
            self.join(timeout=self.ctx.heartbeat_seconds + 10)
        try:
            with self.ctx.engine.begin() as connection:
                now = utcnow()
                connection.execute(
                    update(WorkerRow)
                    .where(WorkerRow.id == self.ctx.worker_id)
                    .values(stopped_at=now, last_seen_at=now, job_id=None, trial_number=None)
                )
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("could not mark worker %s stopped: database away", self.ctx.worker_id)

    def run(self) -> None:
        while True:
            try:
                self.beat()
            except Exception as error:
                if is_transient(error):
                    log.warning("presence of worker %s: database unavailable", self.ctx.worker_id)
                else:
                    log.exception("presence of worker %s failed", self.ctx.worker_id)
            if self._closed.wait(self.ctx.heartbeat_seconds):
                return

    def beat(self) -> None:
        """Write the row once (insert it on the first beat, forgetting long-gone workers)."""
        now = utcnow()
        doing = self.doing
        with self.ctx.engine.begin() as connection:
            if not self._announced:
                connection.execute(
                    delete(WorkerRow).where(WorkerRow.last_seen_at < now - FORGET_AFTER)
                )
                connection.execute(
                    insert(WorkerRow).values(
                        id=self.ctx.worker_id,
                        hostname=socket.gethostname()[:255],
                        pid=os.getpid(),
                        device=self.ctx.device[:32],
                        started_at=now,
                        last_seen_at=now,
                        job_id=doing.job_id,
                        trial_number=doing.trial_number,
                    )
                )
                self._announced = True
                return
            connection.execute(
                update(WorkerRow)
                .where(WorkerRow.id == self.ctx.worker_id)
                .values(last_seen_at=now, job_id=doing.job_id, trial_number=doing.trial_number)
            )
