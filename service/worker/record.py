"""Write a finished trial in ONE transaction: the row, the job counters, the front, the history.

The Pareto front is updated incrementally: ``search.pareto.insert`` runs against the stored
``pareto_members`` of the job only (O(front), not O(trials)). A new front member's weights are
stored; the weights of members that leave the front are deleted, so storage stays bounded by the
front. Every complete trial appends one ``hypervolume_history`` row. A trial stopped early
(``stopped_early``) is written with its partial values, the epoch and the neighbour it lost to,
and never touches the front. The job succeeds when ``n_trials`` trials are complete or stopped
early (claims never hand out more than that), or when its space is used up (``finished_reason``)
and nothing runs.

Every write is guarded by "this row is still this worker's running trial": if another worker reaped
the trial meanwhile, nothing is written (``LeaseLost``) and the retry stands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, insert, update

from search.engine import TrialOutcome
from service.db.tables import HypervolumeHistory, Job, Trial, TrialWeights
from service.worker.claim import Claim
from service.worker.context import WorkerContext
from service.worker.database import utcnow, write_transaction
from service.worker.front import FrontChange, update_front
from service.worker.lease import write_epochs
from service.worker.recovery import lock_job
from service.worker.settle import job_counts, settle_job

if TYPE_CHECKING:
    from search.training import EpochReport

__all__ = ["LeaseLost", "Recorded", "record_complete", "record_stopped"]

log = logging.getLogger("paretonas.worker")



class LeaseLost(Exception):
    """The trial row is no longer this worker's running trial; nothing was written."""


@dataclass(frozen=True)
class Recorded:
    """What one recorded trial changed: the front and the job."""

    n_complete: int
    front_size: int
    hypervolume: float | None
    joined_front: bool
    job_status: str


def record_complete(
    ctx: WorkerContext,
    *,
    claim: Claim,
    outcome: TrialOutcome,
    epochs: list[EpochReport] | None = None,
) -> Recorded:
    """Record a complete (or stopped-early) trial and everything it changes, in one transaction;
    ``epochs``: the learning-curve epochs no lease renewal has written yet."""
    job_id = claim.job.job_id
    early = outcome.state == "stopped_early"
    with write_transaction(ctx.engine) as connection:
        job = lock_job(connection, job_id=job_id)
        assert job is not None, f"job {job_id} vanished under a running trial"
        now = utcnow()
        _finish_row(
            connection,
            ctx=ctx,
            claim=claim,
            values={
                "state": outcome.state,
                **_measured(outcome),
                "preprocess_json": outcome.preprocess_json,
                "finished_at": now,
                "lease_expires_at": None,
                "error": outcome.reason,
                "stopped_epoch": outcome.stopped_epoch,
                "lost_to": outcome.lost_to,
            },
        )
        write_epochs(connection, job_id=job_id, number=claim.number, epochs=epochs or [])
        joins = outcome.feasible and not early
        change = update_front(connection, job=claim.job, outcome=outcome if joins else None,
                              now=now)
        _store_weights(connection, job_id=job_id, outcome=outcome, change=change)
        connection.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                n_running=Job.n_running - 1,
                n_complete=Job.n_complete + (0 if early else 1),
                n_stopped_early=Job.n_stopped_early + (1 if early else 0),
                front_size=change.front_size,
                hypervolume=change.hypervolume,
                updated_at=now,
            )
        )
        counts = job_counts(connection, job_id=job_id)
        if not early:
            connection.execute(
                insert(HypervolumeHistory).values(
                    job_id=job_id,
                    n_complete=counts.n_complete,
                    hypervolume=change.hypervolume,
                    recorded_at=now,
                )
            )
        status = settle_job(connection, job_id=job_id, counts=counts, now=now)
    return Recorded(
        n_complete=counts.n_complete,
        front_size=change.front_size,
        hypervolume=change.hypervolume,
        joined_front=change.joined,
        job_status=status,
    )


def _measured(outcome: TrialOutcome) -> dict[str, object]:
    """The trial row's columns of what training measured (a stopped trial keeps them too, so
    the dashboard can place it; it never joins the front)."""
    return {
        "val_accuracy": outcome.val_accuracy,
        "test_accuracy": outcome.test_accuracy,
        "params": outcome.params,
        "macs": outcome.macs,
        "feasible": outcome.feasible,
        "train_seconds": outcome.train_seconds,
        "spec_json": outcome.spec_json,
    }


def record_stopped(
    ctx: WorkerContext,
    *,
    claim: Claim,
    reason: str,
    outcome: TrialOutcome | None = None,
    epochs: list[EpochReport] | None = None,
) -> str:
    """Record a trial stopped by a cancel (or by its job failing); returns the job's status.

    ``outcome``: the partial result at the stop (its accuracy, parameters and MACs are kept so
    the dashboard can place the trial; it never joins the front). ``epochs``: as for
    ``record_complete``.
    """
    job_id = claim.job.job_id
    partial = {} if outcome is None else _measured(outcome)
    with write_transaction(ctx.engine) as connection:
        lock_job(connection, job_id=job_id)
        now = utcnow()
        _finish_row(
            connection,
            ctx=ctx,
            claim=claim,
            values={
                "state": "stopped",
                "error": reason,
                "finished_at": now,
                "lease_expires_at": None,
                **partial,
            },
        )
        write_epochs(connection, job_id=job_id, number=claim.number, epochs=epochs or [])
        connection.execute(
            update(Job).where(Job.id == job_id).values(n_running=Job.n_running - 1, updated_at=now)
        )
        return settle_job(connection, job_id=job_id, now=now)


def _finish_row(
    connection: Connection, *, ctx: WorkerContext, claim: Claim, values: dict[str, object]
) -> None:
    result = connection.execute(
        update(Trial)
        .where(
            Trial.id == claim.trial_id,
            Trial.state == "running",
            Trial.worker_id == ctx.worker_id,
        )
        .values(**values)
    )
    if result.rowcount != 1:
        raise LeaseLost(f"trial {claim.number} of job {claim.job.job_id} was reaped meanwhile")


def _store_weights(
    connection: Connection, *, job_id: str, outcome: TrialOutcome, change: FrontChange
) -> None:
    if change.left:
        connection.execute(
            delete(TrialWeights).where(
                TrialWeights.job_id == job_id, TrialWeights.trial_number.in_(change.left)
            )
        )
    if change.joined and outcome.weights is not None:
        connection.execute(
            insert(TrialWeights).values(
                job_id=job_id, trial_number=outcome.number, data=outcome.weights
            )
        )
