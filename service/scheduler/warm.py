"""Warm starts: the previous successful run's front, as parameter dicts of the new template's space.

The stored front members carry their (pruned) architecture; ``search.space.encode`` turns each
back into the parameters that decode to it in the space of the job about to start (trained ranks
are ignored), and ``search.config`` enqueues them as the study's first trials. A member that lies
outside the new space (the template changed) is left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.spec import ArchSpec
from search.config import parse_config
from search.space import Choice, encode
from service.db.tables import Job, ParetoMember, ScheduleRun

__all__ = ["WarmStart", "previous_front"]


@dataclass(frozen=True)
class WarmStart:
    """The job the parameters come from and the parameter dicts (front order: fewest params)."""

    job_id: str | None
    params: tuple[dict[str, Choice], ...]


def previous_front(session: Session, *, schedule_id: str, config_json: str) -> WarmStart:
    """The front of the schedule's latest succeeded job, encoded in the space of ``config_json``
    (the new job's stored config); at most its ``n_trials`` architectures."""
    previous = session.scalars(
        select(Job)
        .join(ScheduleRun, ScheduleRun.job_id == Job.id)
        .where(ScheduleRun.schedule_id == schedule_id, Job.status == "succeeded")
        .order_by(ScheduleRun.id.desc())
        .limit(1)
    ).first()
    if previous is None:
        return WarmStart(job_id=None, params=())
    config = parse_config(json.loads(config_json))
    members = session.scalars(
        select(ParetoMember)
        .where(ParetoMember.job_id == previous.id)
        .order_by(ParetoMember.params, ParetoMember.trial_number)
    )
    params: list[dict[str, Choice]] = []
    for member in members:
        try:
            encoded = encode(config.space, ArchSpec.from_json(member.spec_json))
        except ValueError:  # SpaceError / SpecError
            continue  # outside the new template's space
        if encoded not in params:
            params.append(encoded)
    return WarmStart(job_id=previous.id, params=tuple(params[: config.n_trials]))
