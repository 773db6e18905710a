"""A job's stored Pareto front, updated one trial at a time (O(front), never O(trials)).

``pareto_members`` holds the current front of (validation accuracy, parameters[, MACs]) points of
feasible complete trials; ``search.pareto.insert`` decides, against those members only, whether a
new point joins and which members it dominates. Hypervolume: ``search.pareto.hypervolume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from search.engine import TrialOutcome
from search.pareto import FrontPoint, hypervolume
from search.pareto import insert as front_insert
from service.db.tables import ParetoMember
from service.worker.context import JobContext

__all__ = ["FrontChange", "update_front"]


@dataclass(frozen=True)
class FrontChange:
    """What one trial did to the front: joined it or not, which members left, size, hypervolume."""

    joined: bool
    left: tuple[int, ...]
    front_size: int
    hypervolume: float | None


def update_front(
    connection: Connection, *, job: JobContext, outcome: TrialOutcome | None, now: datetime
) -> FrontChange:
    """Insert ``outcome`` (None: an infeasible trial, front unchanged) into the stored front."""
    with_macs = "macs" in job.config.objectives
    rows = connection.execute(
        select(
            ParetoMember.trial_number,
            ParetoMember.val_accuracy,
            ParetoMember.params,
            ParetoMember.macs,
        ).where(ParetoMember.job_id == job.job_id)
    ).all()
    front = [
        FrontPoint(
            number=row.trial_number,
            accuracy=row.val_accuracy,
            params=row.params,
            macs=row.macs if with_macs else None,
        )
        for row in rows
    ]
    joined = False
    left: tuple[int, ...] = ()
    if outcome is not None:
        point = FrontPoint(
            number=outcome.number,
            accuracy=outcome.val_accuracy,
            params=outcome.params,
            macs=outcome.macs if with_macs else None,
        )
        update = front_insert(front, point)
        joined = update.added
        left = tuple(member.number for member in update.removed)
        if left:
            connection.execute(
                delete(ParetoMember).where(
                    ParetoMember.job_id == job.job_id, ParetoMember.trial_number.in_(left)
                )
            )
        if joined:
            connection.execute(
                insert(ParetoMember).values(
                    job_id=job.job_id,
                    trial_number=outcome.number,
                    val_accuracy=outcome.val_accuracy,
                    test_accuracy=outcome.test_accuracy,
                    params=outcome.params,
                    macs=outcome.macs,
                    spec_json=outcome.spec_json,
                    added_at=now,
                )
            )
        front = list(update.front)
    volume = hypervolume(front, job.reference_point) if front else None
    return FrontChange(joined=joined, left=left, front_size=len(front), hypervolume=volume)
