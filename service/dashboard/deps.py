"""FastAPI dependencies of the dashboard's pages: the signed-in caller and the CSRF check.

    @router.get("/things")
    def things(signed_in: SignedInDep) -> HTMLResponse: ...      # not signed in: 303 to /signin

    @router.post("/things/{id}/pause")
    def pause(signed_in: CsrfCheckedDep) -> RedirectResponse: ...  # no/wrong csrf_token: 403

Templates get the token with ``{{ csrf_field(signed_in) }}`` (see ``service.dashboard.templating``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from service.api.deps import SessionDep, SettingsDep
from service.api.problems import Problem
from service.dashboard.session import CSRF_FIELD, SignedIn, check_csrf, current_session

__all__ = ["CsrfCheckedDep", "SignInRequired", "SignedInDep", "install_sign_in_redirect"]


class SignInRequired(Exception):
    """A page was asked for without a live session: answered with a redirect to /signin."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def get_signed_in(request: Request, session: SessionDep, settings: SettingsDep) -> SignedIn:
    """The caller's live dashboard session; else SignInRequired (a 303 to the sign-in page)."""
    signed_in = current_session(request, session, settings)
    if signed_in is None:
        raise SignInRequired(_back_to(request))
    return signed_in


def _back_to(request: Request) -> str:
    """Where to go after signing in: the page asked for; for a form POST (cancel, pause, sign
    out) the page the form was on, since the POST-only route cannot be opened (it was a 405)."""
    if request.method in ("GET", "HEAD"):
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path.startswith("/"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/jobs"


SignedInDep = Annotated[SignedIn, Depends(get_signed_in)]


async def get_csrf_checked(request: Request, signed_in: SignedInDep) -> SignedIn:
    """The signed-in caller of a form POST whose ``csrf_token`` field is the session's; 403
    csrf-failed otherwise (a forged cross-site form never carries it)."""
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not check_csrf(signed_in, token if isinstance(token, str) else None):
        raise Problem(
            "csrf-failed",
            status=403,
            detail=f"the form's {CSRF_FIELD} is missing or not this session's; reload the page "
            "and submit the form again",
        )
    return signed_in


CsrfCheckedDep = Annotated[SignedIn, Depends(get_csrf_checked)]


def install_sign_in_redirect(app: FastAPI) -> None:
    """Answer SignInRequired with 303 See Other to /signin?next=<the page asked for>."""

    @app.exception_handler(SignInRequired)
    async def _redirect(_request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"/signin?next={quote(exc.next_path, safe='')}", status_code=303)
