"""/api/v1/jobs/{id}/export/{front,trials}.{csv,json}: downloads of a job's results."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from service.api import export
from service.api.deps import EngineDep, JobDep, SessionDep
from service.api.results import pareto_public

__all__ = ["router"]

router = APIRouter(prefix="/jobs/{job_id}/export", tags=["results"])

_CSV = "text/csv; charset=utf-8"
_Docs = dict[int | str, dict[str, Any]]
_CSV_DOC: _Docs = {200: {"content": {"text/csv": {}}, "description": "CSV, a header row first"}}
_JSON_DOC: _Docs = {200: {"content": {"application/json": {}}, "description": "a JSON array"}}


def _attachment(job_id: str, name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{job_id}-{name}"'}


@router.get("/front.csv", response_class=Response, responses=_CSV_DOC)
def front_csv(job: JobDep, session: SessionDep, request: Request) -> Response:
    """The front's members by parameters (columns: export.FRONT_COLUMNS)."""
    pareto = pareto_public(session, job=job, request=request, history="none")
    return Response(
        export.front_csv(pareto), media_type=_CSV, headers=_attachment(job.id, "front.csv")
    )


@router.get("/front.json", response_class=Response, responses=_JSON_DOC)
def front_json(job: JobDep, session: SessionDep, request: Request) -> Response:
    """The front's members by parameters, as in GET /pareto's ``members``."""
    pareto = pareto_public(session, job=job, request=request, history="none")
    body = "[" + ",".join(member.model_dump_json() for member in pareto.members) + "]"
    return Response(
        body, media_type="application/json", headers=_attachment(job.id, "front.json")
    )


@router.get("/trials.csv", response_class=StreamingResponse, responses=_CSV_DOC)
def trials_csv(job: JobDep, engine: EngineDep) -> StreamingResponse:
    """Every trial by number (columns: export.TRIAL_COLUMNS), streamed."""
    return StreamingResponse(
        export.trials_csv(engine, job_id=job.id),
        media_type=_CSV,
        headers=_attachment(job.id, "trials.csv"),
    )


@router.get("/trials.json", response_class=StreamingResponse, responses=_JSON_DOC)
def trials_json(job: JobDep, engine: EngineDep) -> StreamingResponse:
    """Every trial by number as a JSON array of the trials pages' objects, streamed."""
    return StreamingResponse(
        export.trials_json(engine, job_id=job.id),
        media_type="application/json",
        headers=_attachment(job.id, "trials.json"),
    )
