"""The dashboard's schedules page: each schedule with its cron in words, next run, paused state,
pause / resume (CSRF-checked forms), its latest runs and a link comparing its runs' fronts.

It renders what GET /api/v1/schedules and GET /api/v1/schedules/{id}/runs serve, through the same
functions (``service.api.schedules``); pause and resume are PATCH /api/v1/schedules/{id}.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.api import schedules
from service.api.deps import ClockDep, EngineDep, SessionDep, SettingsDep, get_schedule
from service.api.problems import Problem
from service.api.schedule_schemas import SchedulesPublic, ScheduleUpdate
from service.dashboard.deps import CsrfCheckedDep, SignedInDep
from service.dashboard.pages import COMPARE_MAX, json_script, not_found, page

__all__ = ["RUNS_SHOWN", "SCHEDULES_PER_PAGE", "router"]

router = APIRouter(include_in_schema=False)

SCHEDULES_PER_PAGE = 50
RUNS_SHOWN = 10


@router.get("/schedules", response_class=HTMLResponse, name="schedules_page")
def schedules_page(
    request: Request,
    signed_in: SignedInDep,
    session: SessionDep,
    notice: str | None = None,
) -> HTMLResponse:
    """Your schedules, newest first (as GET /api/v1/schedules), each with its latest runs."""
    rows, next_cursor = schedules.list_schedules(
        session, owner=signed_in.owner, limit=SCHEDULES_PER_PAGE, cursor=None
    )
    data = SchedulesPublic(
        data=[schedules.schedule_public(session, row) for row in rows], next_cursor=next_cursor
    )
    runs = {
        row.id: [
            schedules.run_public(run)
            for run in schedules.list_runs(
                session, schedule_id=row.id, limit=RUNS_SHOWN, cursor=None
            )[0]
        ]
        for row in rows
    }
    compare = {
        item.id: "/compare?" + urlencode([("job", job_id) for job_id in item.job_ids[:COMPARE_MAX]])
        for item in data.data
        if len(item.job_ids) >= 1
    }
    return page(
        request,
        "schedules.html",
        signed_in=signed_in,
        nav="schedules",
        page=data,
        page_json=json_script(data),
        runs=runs,
        compare=compare,
        notice=notice,
    )


def _set_paused_route(*, paused: bool, doc: str) -> Callable[..., Response]:
    """The pause and the resume form's handler, which differ only in the value they set.

    One body for both; each route gets its own function (FastAPI reads the dependencies from its
    signature, and the route name from its name).
    """

    def set_paused(
        schedule_id: str,
        request: Request,
        signed_in: CsrfCheckedDep,
        session: SessionDep,
        engine: EngineDep,
        settings: SettingsDep,
        now: ClockDep,
    ) -> Response:
        try:
            schedule = get_schedule(schedule_id, signed_in.owner, session)
        except Problem as problem:
            return not_found(request, signed_in, problem)
        session.rollback()  # end the read before the write (SQLite: no lock held across)
        updated = schedules.update_schedule(
            engine,
            schedule_id=schedule.id,
            body=ScheduleUpdate(paused=paused),
            owner=signed_in.owner,
            settings=settings,
            now=now(),
        )
        notice = f"{updated.name}: {'paused' if paused else 'resumed'}."
        target = request.url_for("schedules_page").path
        return RedirectResponse(f"{target}?{urlencode({'notice': notice})}", status_code=303)

    set_paused.__name__ = set_paused.__qualname__ = "pause" if paused else "resume"
    set_paused.__doc__ = doc
    return set_paused


pause = router.post("/schedules/{schedule_id}/pause")(
    _set_paused_route(
        paused=True,
        doc='Pause the schedule (as PATCH {"paused": true}), then back to the schedules page.',
    )
)
resume = router.post("/schedules/{schedule_id}/resume")(
    _set_paused_route(
        paused=False, doc='Resume it from its next due time (as PATCH {"paused": false}).'
    )
)
