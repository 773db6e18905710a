"""/api/v1/jobs/{id}/trials, /pareto and /trials/{n}/model: a job's results."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import JobDep, SessionDep
from service.api.model_formats import FORMATS, MEDIA_TYPE, check_format, model_bytes
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
        preprocess=json.loads(row.preprocess_json) if row.preprocess_json else None,
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
                model_url=_model_url(request, job.id, m.trial_number),
                model_urls={
                    fmt: f"{_model_url(request, job.id, m.trial_number)}?format={fmt}"
                    for fmt in FORMATS
                },
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


def _model_url(request: Request, job_id: str, number: int) -> str:
    return str(request.url_for("get_model", job_id=job_id, number=number).path)


@router.get(
    "/trials/{number}/model",
    name="get_model",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}},
                     "description": "safetensors (metadata: architecture, preprocess) or ONNX"}},
)
def get_model(job: JobDep, number: int, session: SessionDep,
              format: str = "safetensors") -> Response:
    """Front member ``number``'s trained model as ``format``: ``safetensors`` (the stored weights;
    metadata "architecture" = the spec, "preprocess" = the input statistics) or ``onnx`` (raw
    inputs ``x`` (batch, C, H, W) float32 -> ``logits``)."""
    fmt = check_format(format)
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
        raise Problem("model-not-found", status=404, detail=_why_no_model(session, job.id, number))
    content = model_bytes(data, fmt=fmt, what=f"trial {number} of job {job.id}")
    filename = f"{job.id}-trial-{number}.{fmt}"
    return Response(
        content=content,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _why_no_model(session: Session, job_id: str, number: int) -> str:
    """Why trial ``number`` has no model to download, and where the front members are listed."""
    listing = f"front members are listed by GET /api/v1/jobs/{job_id}/pareto"
    row = session.execute(
        select(Trial.state, ParetoMember.trial_number)
        .outerjoin(ParetoMember, (ParetoMember.job_id == Trial.job_id)
                   & (ParetoMember.trial_number == Trial.number))
        .where(Trial.job_id == job_id, Trial.number == number)
        .order_by(Trial.attempt.desc())
    ).first()
    if row is None:
        return f"job {job_id} has no trial {number}; {listing}"
    if row.state != "complete":
        return (f"trial {number} of job {job_id} is {row.state}: only complete trials on the "
                f"Pareto front keep their weights; {listing}")
    if row.trial_number is None:
        return (f"trial {number} of job {job_id} is not on the Pareto front (another trial "
                f"dominates it), so its weights were not kept; {listing}")
    return f"trial {number} of job {job_id} is on the Pareto front but has no stored weights"
