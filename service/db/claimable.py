"""What workers may still claim from a job: ONE definition for the claim rule
(service/worker/claim.py) and the queue it reports (``paretonas_queue_trials``)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_

from service.db.tables import Job

__all__ = ["takes_claims", "trials_to_hand_out"]


def takes_claims() -> ColumnElement[bool]:
    """A job workers may claim from, room aside: queued or running, no cancel asked, its space
    not used up."""
    return and_(
        Job.status.in_(("queued", "running")),
        Job.cancel_requested.is_(False),
        Job.finished_reason.is_(None),
    )


def trials_to_hand_out() -> ColumnElement[int]:
    """Trials of a job neither trained (complete or stopped early) nor running."""
    return Job.n_trials - Job.n_complete - Job.n_stopped_early - Job.n_running
