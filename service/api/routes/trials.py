"""/api/v1/jobs/{id}/trials, /pareto and /trials/{n}/model: a job's results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import JobDep, RenderedDep, SessionDep, release
from service.api.model_formats import FORMATS, MEDIA_TYPE, check_format, model_bytes
from service.api.openapi import problems
from service.api.pagination import MAX_OFFSET, decode_offset, encode_cursor
from service.api.problems import Problem
from service.api.rendered import job_version
from service.api.result_schemas import HistoryMode
from service.api.results import pareto_public, trial_public
from service.api.schemas import ParetoPublic, TrialsPublic, TrialState
from service.db.tables import MAX_TRIAL_NUMBER, ParetoMember, Trial, TrialWeights

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


@router.get("/trials", response_model=TrialsPublic, responses=problems(404))
def list_trials(
    job: JobDep,
    session: SessionDep,
    rendered: RenderedDep,
    sort: Annotated[str, Query(json_schema_extra={"enum": list(SORTS)})] = "number",
    state: TrialState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    """The job's trials, ``limit`` at a time, sorted by ``sort`` (``-`` descending; trials
    without the value last, ties by number)."""
    if sort not in SORTS:
        raise Problem(
            "invalid-sort",
            status=422,
            detail=f"sort: got {sort!r}; allowed: {', '.join(SORTS)}",
            allowed=list(SORTS),
        )
    offset = decode_offset(cursor) if cursor else 0
    key = ("trials", sort, state, limit, offset, *job_version(job))
    return rendered.response(
        key, lambda: trials_page(session, job_id=job.id, sort=sort, state=state, limit=limit,
                                 offset=offset)
    )


def trials_page(
    session: Session, *, job_id: str, sort: str, state: str | None, limit: int, offset: int
) -> TrialsPublic:
    """One page of a job's trials (``sort`` by number walks the (job_id, number) index)."""
    column = _SORT_COLUMNS[sort.lstrip("-")]
    order = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    query = select(Trial).where(Trial.job_id == job_id)
    if state is not None:
        query = query.where(Trial.state == state)
    rows = list(
        session.scalars(query.order_by(order, Trial.number).offset(offset).limit(limit + 1))
    )
    more = len(rows) > limit and offset + limit <= MAX_OFFSET
    next_cursor = encode_cursor({"offset": offset + limit}) if more else None
    return TrialsPublic(data=[trial_public(row) for row in rows[:limit]], next_cursor=next_cursor)


@router.get("/pareto", response_model=ParetoPublic, responses=problems(404))
def get_pareto(
    job: JobDep,
    session: SessionDep,
    request: Request,
    rendered: RenderedDep,
    history: HistoryMode = "changes",
) -> Response:
    """The front (by parameters), the reference point and the hypervolume history: only where
    it changed (``changes``, the default: the same step curve, the size of the front's history),
    after every trial (``all``: one point per complete trial) or none (``none``)."""
    key = ("pareto", history, request.scope.get("root_path", ""), *job_version(job))
    return rendered.response(
        key, lambda: pareto_public(session, job=job, request=request, history=history)
    )


@router.get(
    "/trials/{number}/model",
    name="get_model",
    response_class=Response,
    responses={
        200: {
            "content": {MEDIA_TYPE: {}},
            "description": "safetensors (metadata: architecture, preprocess) or ONNX",
        },
        **problems(404, 409),
    },
)
def get_model(
    job: JobDep,
    number: Annotated[int, Path(ge=0, le=MAX_TRIAL_NUMBER, description="A front member's trial.")],
    session: SessionDep,
    format: Annotated[str, Query(json_schema_extra={"enum": list(FORMATS)})] = "safetensors",
) -> Response:
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
    # An ONNX export takes seconds behind one lock: the connection goes back to the pool first
    # (held through the wait, 16 concurrent exports emptied the pool for every other request).
    release(session)
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
        .outerjoin(
            ParetoMember,
            (ParetoMember.job_id == Trial.job_id) & (ParetoMember.trial_number == Trial.number),
        )
        .where(Trial.job_id == job_id, Trial.number == number)
        .order_by(Trial.attempt.desc())
    ).first()
    if row is None:
        return f"job {job_id} has no trial {number}; {listing}"
    if row.state != "complete":
        return (
            f"trial {number} of job {job_id} is {row.state}: only complete trials on the "
            f"Pareto front keep their weights; {listing}"
        )
    if row.trial_number is None:
        return (
            f"trial {number} of job {job_id} is not on the Pareto front (another trial "
            f"dominates it), so its weights were not kept; {listing}"
        )
    return f"trial {number} of job {job_id} is on the Pareto front but has no stored weights"
