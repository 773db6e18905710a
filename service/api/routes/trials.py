"""/api/v1/jobs/{id}/trials, /pareto and /trials/{n}/model: a job's results."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from service.api.deps import JobDep, SessionDep
from service.api.pagination import decode_cursor, encode_cursor
from service.api.problems import Problem
from service.api.schemas import (
    HypervolumePoint,
    ParetoMemberPublic,
    ParetoPublic,
    TrialPublic,
    TrialsPublic,
    TrialState,
)
from service.db.tables import HypervolumeHistory, ParetoMember, Trial, TrialWeights

__all__ = ["SORTS", "router"]

router = APIRouter(prefix="/jobs/{job_id}", tags=["results"])

_SORT_COLUMNS = {
    "number": Trial.number,
    "val_accuracy": Trial.val_accuracy,
    "test_accuracy": Trial.test_accuracy,
    "params": Trial.params,
    "macs": Trial.macs,
    "train_seconds": Trial.train_seconds,
}
SORTS = tuple(f"{sign}{name}" for name in _SORT_COLUMNS for sign in ("", "-"))


@router.get("/trials")
def list_trials(
    job: JobDep,
    session: SessionDep,
    sort: str = "number",
    state: TrialState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> TrialsPublic:
    """The job's trials, ``limit`` at a time, sorted by ``sort`` (``-`` descending; trials
    without the value last, ties by number)."""
    if sort not in SORTS:
        raise Problem(
            "invalid-sort",
            status=422,
            detail=f"sort: got {sort!r}; allowed: {', '.join(SORTS)}",
            allowed=list(SORTS),
        )
    column = _SORT_COLUMNS[sort.lstrip("-")]
    order = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    offset = int(decode_cursor(cursor, keys=("offset",))["offset"]) if cursor else 0
    query = select(Trial).where(Trial.job_id == job.id)
    if state is not None:
        query = query.where(Trial.state == state)
    rows = list(
        session.scalars(query.order_by(order, Trial.number).offset(offset).limit(limit + 1))
    )
    next_cursor = encode_cursor({"offset": offset + limit}) if len(rows) > limit else None
    return TrialsPublic(data=[_trial(row) for row in rows[:limit]], next_cursor=next_cursor)


def _trial(row: Trial) -> TrialPublic:
    return TrialPublic(
        number=row.number,
        attempt=row.attempt,
        retry_of=row.retry_of,
        state=row.state,  # type: ignore[arg-type]
        choices=json.loads(row.params_json),
        spec=json.loads(row.spec_json) if row.spec_json else None,
        val_accuracy=row.val_accuracy,
        test_accuracy=row.test_accuracy,
        params=row.params,
        macs=row.macs,
        feasible=row.feasible,
        train_seconds=row.train_seconds,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
    )


@router.get("/pareto")
def get_pareto(job: JobDep, session: SessionDep, request: Request) -> ParetoPublic:
    """The front (by parameters), the reference point and the hypervolume after each trial."""
    members = session.scalars(
        select(ParetoMember)
        .where(ParetoMember.job_id == job.id)
        .order_by(ParetoMember.params, ParetoMember.trial_number)
    ).all()
    history = session.scalars(
        select(HypervolumeHistory)
        .where(HypervolumeHistory.job_id == job.id)
        .order_by(HypervolumeHistory.n_complete, HypervolumeHistory.id)
    ).all()
    return ParetoPublic(
        job_id=job.id,
        objectives=list(json.loads(job.config_json).get("objectives", [])),
        reference_point=json.loads(job.reference_point_json),
        hypervolume=job.hypervolume,
        members=[
            ParetoMemberPublic(
                trial_number=m.trial_number,
                val_accuracy=m.val_accuracy,
                test_accuracy=m.test_accuracy,
                params=m.params,
                macs=m.macs,
                spec=json.loads(m.spec_json),
                added_at=m.added_at,
                model_url=str(
                    request.url_for("get_model", job_id=job.id, number=m.trial_number).path
                ),
            )
            for m in members
        ],
        history=[
            HypervolumePoint(
                n_complete=h.n_complete, hypervolume=h.hypervolume, recorded_at=h.recorded_at
            )
            for h in history
        ],
    )


@router.get(
    "/trials/{number}/model",
    name="get_model",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "safetensors"}},
)
def get_model(job: JobDep, number: int, session: SessionDep) -> Response:
    """The safetensors weights of front member ``number`` (metadata "architecture": the spec)."""
    data = session.scalars(
        select(TrialWeights.data)
        .join(
            ParetoMember,
            (ParetoMember.job_id == TrialWeights.job_id)
            & (ParetoMember.trial_number == TrialWeights.trial_number),
        )
        .where(TrialWeights.job_id == job.id, TrialWeights.trial_number == number)
    ).first()
    if data is None:
        raise Problem(
            "model-not-found",
            status=404,
            detail=f"trial {number} of job {job.id} is not on the Pareto front or has no stored "
            f"weights; front members are listed by GET /api/v1/jobs/{job.id}/pareto",
        )
    filename = f"{job.id}-trial-{number}.safetensors"
    return Response(
        content=data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
