"""/api/v1/jobs/{id}/trials/{n} (one trial: layers and learning curve) and /points (the plot)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from service.api.deps import JobDep, SessionDep
from service.api.openapi import problems
from service.api.result_schemas import TrialDetailPublic, TrialPointsPublic
from service.api.results import MAX_POINTS, trial_detail, trial_points
from service.db.tables import MAX_TRIAL_NUMBER

__all__ = ["router"]

router = APIRouter(prefix="/jobs/{job_id}", tags=["results"])


@router.get("/trials/{number}", name="get_trial", responses=problems(404))
def get_trial(
    job: JobDep,
    number: Annotated[int, Path(ge=0, le=MAX_TRIAL_NUMBER, description="The trial's number.")],
    session: SessionDep,
    request: Request,
) -> TrialDetailPublic:
    """One trial: its choices and results, its layers (kind, shapes, rank, parameters and MACs
    each, from models.plan / models.costs), its learning curve (per epoch: training loss and
    validation accuracy, training then fine-tune phase), and for a front member its model."""
    return trial_detail(session, job=job, number=number, request=request)


@router.get("/points")
def get_points(
    job: JobDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 20_000,
) -> TrialPointsPublic:
    """Every finished trial's (number, state, accuracies, parameters, MACs, feasible) as
    columns, for plotting; past ``limit`` trials every ``stride``-th trial number is kept."""
    return trial_points(session, job=job, limit=limit)
