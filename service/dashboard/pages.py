"""The dashboard's pages: jobs, one job, one trial, compare; and cancel from the job page.

Each page renders what the JSON API serves, through the same functions (``service.api.jobs``,
``service.api.results``), and embeds that JSON for its scripts; live data comes from the API.
A job that is not the caller's is a 404 page, as in the API (``service.api.deps.owned_job``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from service.api import jobs
from service.api.deps import EngineDep, SessionDep, owned_job
from service.api.problems import Problem
from service.api.results import pareto_public, trial_detail
from service.api.schemas import JobsPublic, JobStatus
from service.dashboard.deps import CsrfCheckedDep, SignedInDep
from service.dashboard.session import SignedIn
from service.dashboard.templating import templates
from service.db.tables import JOB_STATUSES

__all__ = ["JOBS_PER_PAGE", "router"]

router = APIRouter(include_in_schema=False)

JOBS_PER_PAGE = 50
COMPARE_MAX = 12


def json_script(value: BaseModel | list[BaseModel] | list[Any] | dict[str, Any]) -> str:
    """JSON safe inside <script type="application/json"> (no "</script>" can end it early).
    Models are written as the API writes them (a NaN or infinity is null: ``json.dumps`` would
    write a bare NaN, which ``JSON.parse`` refuses)."""
    if isinstance(value, BaseModel):
        text = value.model_dump_json()
    elif isinstance(value, list) and all(isinstance(item, BaseModel) for item in value):
        text = "[" + ",".join(item.model_dump_json() for item in value) + "]"
    else:
        text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(
    request: Request,
    name: str,
    *,
    signed_in: SignedIn | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render template ``name``; pages may not be framed by other sites."""
    response = templates.TemplateResponse(
        request, name, {"signed_in": signed_in, **context}, status_code=status_code
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def not_found(request: Request, signed_in: SignedIn, problem: Problem) -> HTMLResponse:
    """The 404 page for a job or trial the caller cannot see."""
    return page(
        request, "not_found.html", signed_in=signed_in, status_code=404, detail=problem.detail
    )


@router.get("/")
def home() -> RedirectResponse:
    """The dashboard starts at the jobs page."""
    return RedirectResponse("/jobs", status_code=303)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    signed_in: SignedInDep,
    session: SessionDep,
    status: JobStatus | None = None,
) -> HTMLResponse:
    """Your jobs, newest first (as GET /api/v1/jobs), filtered by status; live while any runs."""
    rows, next_cursor = jobs.list_jobs(
        session, owner=signed_in.owner, limit=JOBS_PER_PAGE, cursor=None, status=status
    )
    data = JobsPublic(data=[jobs.job_public(row) for row in rows], next_cursor=next_cursor)
    return page(
        request,
        "jobs.html",
        signed_in=signed_in,
        nav="jobs",
        page=data,
        page_json=json_script(data),
        status=status,
        statuses=JOB_STATUSES,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse, name="job_page")
def job_page(
    job_id: str,
    request: Request,
    signed_in: SignedInDep,
    session: SessionDep,
    notice: str | None = None,
) -> HTMLResponse:
    """The front, the hypervolume history, the config, the trials; cancel."""
    try:
        job = owned_job(session, job_id=job_id, owner=signed_in.owner)
    except Problem as problem:
        return not_found(request, signed_in, problem)
    public = jobs.job_public(job)
    pareto = pareto_public(session, job=job, request=request, history="changes")
    return page(
        request,
        "job.html",
        signed_in=signed_in,
        nav="jobs",
        job=public,
        job_json=json_script(public),
        pareto_json=json_script(pareto),
        config_text=json.dumps(public.config, indent=2, sort_keys=True),
        notice=notice,
    )


@router.post("/jobs/{job_id}/cancel")
def cancel(
    job_id: str,
    request: Request,
    signed_in: CsrfCheckedDep,
    session: SessionDep,
    engine: EngineDep,
) -> Response:
    """Cancel the job (as POST /api/v1/jobs/{id}:cancel), then back to its page."""
    try:
        job = owned_job(session, job_id=job_id, owner=signed_in.owner)
    except Problem as problem:
        return not_found(request, signed_in, problem)
    session.rollback()  # end the read before the write (SQLite: no lock held across)
    try:
        cancelled = jobs.cancel_job(engine, job_id=job.id)
        notice = "Cancelled." if cancelled.status == "cancelled" else "Cancel requested: the "
        if cancelled.status != "cancelled":
            notice += "running trials stop within one epoch."
    except Problem as problem:
        notice = problem.detail
    target = request.url_for("job_page", job_id=job.id).path
    return RedirectResponse(f"{target}?{urlencode({'notice': notice})}", status_code=303)


@router.get("/jobs/{job_id}/trials/{number}", response_class=HTMLResponse)
def trial_page(
    job_id: str,
    number: int,
    request: Request,
    signed_in: SignedInDep,
    session: SessionDep,
) -> HTMLResponse:
    """One trial (as GET /api/v1/jobs/{id}/trials/{n}): layers, learning curve, model."""
    try:
        job = owned_job(session, job_id=job_id, owner=signed_in.owner)
        trial = trial_detail(session, job=job, number=number, request=request)
    except Problem as problem:
        return not_found(request, signed_in, problem)
    return page(
        request,
        "trial.html",
        signed_in=signed_in,
        nav="jobs",
        job=jobs.job_public(job),
        trial=trial,
        trial_json=json_script(trial),
        choices_text=json.dumps(trial.choices, indent=2, sort_keys=True),
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    signed_in: SignedInDep,
    session: SessionDep,
    job: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies query defaults)
) -> HTMLResponse:
    """Overlay the fronts of several of your jobs (each fetched from GET /pareto)."""
    rows, _ = jobs.list_jobs(
        session, owner=signed_in.owner, limit=JOBS_PER_PAGE, cursor=None, status=None
    )
    choices = [jobs.job_public(row) for row in rows]
    selected, missing = [], []
    for job_id in dict.fromkeys(job[:COMPARE_MAX]):
        try:
            owned = owned_job(session, job_id=job_id, owner=signed_in.owner)
            selected.append(jobs.job_public(owned))
        except Problem:
            missing.append(job_id)
    known = {choice.id for choice in choices}
    choices += [s for s in selected if s.id not in known]
    return page(
        request,
        "compare.html",
        signed_in=signed_in,
        nav="compare",
        choices=choices,
        selected=[s.id for s in selected],
        selected_json=json_script(list(selected)),
        missing=missing,
    )
