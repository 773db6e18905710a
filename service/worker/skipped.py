"""Trials settled without training, and jobs whose space is used up (``search.engine.next_trial``).

A duplicate (the same architecture and training config as a finished trial) and a refusal (over
``max_params`` before training) are written as finished rows at once, in the claim's transaction:
they hold no lease and cost no training, and they do not count toward ``n_trials``
(``jobs.n_skipped`` counts them). A job whose space has nothing new left gets a
``finished_reason`` and succeeds once its running trials are recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, update

from search.engine import TrialTicket
from service.db.tables import Job, Trial

__all__ = ["end_used_up", "insert_skipped"]

log = logging.getLogger("paretonas.worker")


def insert_skipped(
    connection: Connection,
    *,
    job_id: str,
    tickets: Sequence[TrialTicket],
    now: datetime,
) -> None:
    """One finished row per duplicate or refusal (each ticket's ``skip`` is its outcome)."""
    for ticket in tickets:
        outcome = ticket.skip
        assert outcome is not None  # next_trial returns settled tickets only
        connection.execute(
            insert(Trial).values(
                job_id=job_id,
                number=outcome.number,
                state=outcome.state,
                params_json=json.dumps(ticket.params, sort_keys=True),
                spec_json=outcome.spec_json,
                val_accuracy=outcome.val_accuracy if outcome.state == "duplicate" else None,
                test_accuracy=outcome.test_accuracy if outcome.state == "duplicate" else None,
                params=outcome.params,
                macs=outcome.macs,
                feasible=outcome.feasible,
                train_seconds=0.0,
                started_at=now,
                finished_at=now,
                error=outcome.reason,
                duplicate_of=outcome.duplicate_of,
            )
        )
        log.info("job %s trial %d %s: %s", job_id, outcome.number, outcome.state, outcome.reason)
    if tickets:
        connection.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(n_skipped=Job.n_skipped + len(tickets), updated_at=now)
        )


def end_used_up(connection: Connection, *, job_id: str, reason: str, now: datetime) -> None:
    """Record why the job ends early; succeed it now when none of its trials is running."""
    connection.execute(
        update(Job).where(Job.id == job_id).values(finished_reason=reason, updated_at=now)
    )
    connection.execute(
        update(Job)
        .where(Job.id == job_id, Job.n_running == 0, Job.status.in_(("queued", "running")))
        .values(status="succeeded", finished_at=now)
    )
    log.info("job %s ends early: %s", job_id, reason)
