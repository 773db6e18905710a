"""Every error the API answers, as RFC 9457 ``application/problem+json``; mapped in ONE place.

A ``Problem`` carries a stable ``type`` URI (``https://paretonas.dev/problems/<slug>``), a title
per type, the status, a detail that names the value and the fix, and optional extra members
(``allowed``, ``errors``, ...). ``install_problem_handlers`` turns Problems, search/'s SpaceError,
FastAPI's request validation errors and Starlette's 404/405 into the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from search.errors import SpaceError

__all__ = ["PROBLEM_BASE", "PROBLEM_MEDIA_TYPE", "Problem", "install_problem_handlers"]

PROBLEM_BASE = "https://paretonas.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

_TITLES = {
    "unauthorized": "Missing or invalid API key",
    "job-not-found": "Job not found",
    "job-finished": "Job already finished",
    "schedule-not-found": "Schedule not found",
    "invalid-cron": "Invalid cron expression",
    "invalid-timezone": "Invalid time zone",
    "run-failed": "The run could not start",
    "idempotency-conflict": "Idempotency key reused with a different body",
    "unknown-dataset": "Unknown dataset",
    "invalid-search-space": "Invalid search space",
    "limit-exceeded": "Limit exceeded",
    "invalid-cursor": "Invalid cursor",
    "invalid-sort": "Invalid sort",
    "model-not-found": "Model not found",
    "invalid-format": "Invalid model format",
    "model-not-exportable": "Model cannot be exported",
    "trial-not-found": "Trial not found",
    "csrf-failed": "Missing or wrong CSRF token",
    "validation-error": "Invalid request",
    "not-ready": "Service not ready",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "http-error": "HTTP error",
}


class Problem(Exception):
    """A domain error with its HTTP status; raised anywhere below the routes."""

    def __init__(
        self,
        slug: str,
        *,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.slug = slug
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self, *, instance: str | None = None) -> dict[str, Any]:
        """The problem+json document."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": _TITLES[self.slug],
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        return body | self.extra

    def response(self, request: Request) -> JSONResponse:
        """The HTTP response of this problem for ``request``."""
        return JSONResponse(
            self.body(instance=request.url.path),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


def space_problem(error: SpaceError, *, prefix: str = "") -> Problem:
    """422 naming the field path and, where there is a choice, the allowed values."""
    path = prefix + error.path
    detail = f"{path}: {error.detail}"
    extra: dict[str, Any] = {"path": path}
    if error.allowed is not None:
        allowed = [str(value) for value in error.allowed]
        detail += f"; allowed: {', '.join(allowed)}"
        extra["allowed"] = allowed
    return Problem("invalid-search-space", status=422, detail=detail, **extra)


def _field_error(error: Sequence[Any] | dict[str, Any]) -> dict[str, Any]:
    assert isinstance(error, dict)
    out: dict[str, Any] = {
        "path": ".".join(str(part) for part in error.get("loc", ())),
        "message": str(error.get("msg", "")),
    }
    expected = (error.get("ctx") or {}).get("expected")
    if expected is not None:
        out["allowed"] = str(expected)
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to problem+json (the one place that does)."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return exc.response(request)

    @app.exception_handler(SpaceError)
    async def _space(request: Request, exc: SpaceError) -> JSONResponse:
        return space_problem(exc).response(request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_field_error(error) for error in exc.errors()]
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        return Problem("validation-error", status=422, detail=detail, errors=errors).response(
            request
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = (
            f"no route {request.method} {request.url.path}"
            if exc.status_code
            in (
                404,
                405,
            )
            else str(exc.detail)
        )
        headers = dict(exc.headers or {})
        return Problem(slug, status=exc.status_code, detail=detail, headers=headers).response(
            request
        )
