"""Sign-in with an API key (a session cookie) and sign-out.

GET /signin shows the form (with a signed double-submit token: a sign-in form from another site
is refused); POST /signin checks the key exactly as the API does (``service.keys.authenticate``):
a wrong key answers 401 with the form and an error, and sets no session cookie. POST /signout
(CSRF-checked) deletes the session.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.api.deps import EngineDep, SessionDep, SettingsDep, release
from service.dashboard.deps import CsrfCheckedDep
from service.dashboard.session import (
    CSRF_FIELD,
    check_signin_token,
    clear_session_cookie,
    current_session,
    end_session,
    set_session_cookie,
    set_signin_cookie,
    signin_token,
    start_session,
)
from service.dashboard.templating import templates
from service.keys import authenticate
from service.settings import Settings

__all__ = ["router", "safe_next"]

router = APIRouter(include_in_schema=False)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another origin)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/jobs"
    return value


def _form(
    request: Request, *, settings: Settings, next_path: str, error: str | None, status: int
) -> HTMLResponse:
    token, cookie = signin_token(settings)
    response = templates.TemplateResponse(
        request,
        "signin.html",
        {"next": next_path, "error": error, "csrf_name": CSRF_FIELD, "csrf_value": token},
        status_code=status,
    )
    set_signin_cookie(response, request=request, value=cookie)
    return response


@router.get("/signin", response_class=HTMLResponse)
def signin_page(
    request: Request, session: SessionDep, settings: SettingsDep, next: str | None = None
) -> Response:
    """The sign-in form; an already signed-in browser goes straight on."""
    if current_session(request, session, settings) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _form(request, settings=settings, next_path=safe_next(next), error=None, status=200)


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    engine: EngineDep,
    session: SessionDep,
    settings: SettingsDep,
    key: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/jobs",
) -> Response:
    """Sign in with an API key: 303 to ``next`` with a session cookie, or 401 and the form."""
    target = safe_next(next)
    if not check_signin_token(request, csrf_token, settings=settings):
        error = "The sign-in form expired or did not come from this site; sign in again."
        return _form(request, settings=settings, next_path=target, error=error, status=403)
    owner = authenticate(session, key.strip())
    if owner is None:
        error = "Unknown or revoked API key. Create one with: paretonas keys create --name NAME"
        return _form(request, settings=settings, next_path=target, error=error, status=401)
    release(session)  # one connection at a time: the key's read ends before the write
    cookie = start_session(engine, owner=owner, settings=settings)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request=request, value=cookie, settings=settings)
    return response


@router.post("/signout")
def signout(
    request: Request, engine: EngineDep, session: SessionDep, signed_in: CsrfCheckedDep
) -> Response:
    """End the session (its cookie no longer signs anyone in) and go to the sign-in page."""
    release(session)  # the session cookie was checked in it; the write takes its own
    end_session(engine, signed_in=signed_in)
    response = RedirectResponse("/signin", status_code=303)
    clear_session_cookie(response, request=request)
    return response
