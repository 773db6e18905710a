"""Every error the API answers, as RFC 9457 ``application/problem+json``; mapped in ONE place.

A ``Problem`` carries a stable ``type`` URI (``https://paretonas.dev/problems/<slug>``), a title
per type, the status, a detail that names the value and the fix, and optional extra members
(``allowed``, ``errors``, ...). ``install_problem_handlers`` turns Problems, search/'s SpaceError,
FastAPI's request validation errors, Starlette's 404/405 (with ``Allow``) and a database that is
away (503 with ``Retry-After``) into the same shape.

Values a client sent are echoed cut short (``clip``), and a detail longer than
``MAX_DETAIL_CHARS`` is cut in its middle, so a 50 MB field never comes back in a 50 MB error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from search.errors import SpaceError

__all__ = [
    "MAX_DETAIL_CHARS",
    "PROBLEM_BASE",
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "clip",
    "cut",
    "install_problem_handlers",
]

PROBLEM_BASE = "https://paretonas.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_DETAIL_CHARS = 1000
CLIP_CHARS = 64

log = logging.getLogger("paretonas.api")


def clip(value: object, limit: int = CLIP_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters (the cut is said, with the length)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def cut(text: str, limit: int = 200) -> str:
    """``text`` itself (no quotes) cut to ``limit`` characters, e.g. a request path."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _cut_middle(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} [... {len(text) - 2 * half} characters cut ...] {text[-half:]}"


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
    "payload-too-large": "Request body too large",
    "json-too-deep": "JSON nested too deeply",
    "key-in-url": "API key outside the Authorization header",
    "quota-exceeded": "Quota exceeded",
    "database-unavailable": "Database unavailable",
    "not-found": "Not found",
    "bad-request": "Malformed request",
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
            "detail": _cut_middle(self.detail),
        }
        if instance is not None:  # the request's path: echoed cut short, like every value
            body["instance"] = cut(instance)
        return body | self.extra

    def response(self, request: Request) -> JSONResponse:
        """The HTTP response of this problem for ``request``."""
        return self.response_at(request.url.path)

    def response_at(self, path: str) -> JSONResponse:
        """The HTTP response of this problem for a request to ``path``."""
        return JSONResponse(
            self.body(instance=path),
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
        slug = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, "http-error"
        )
        headers = dict(exc.headers or {})
        path = request.url.path
        if exc.status_code == 404:
            detail = f"no route {request.method} {cut(path)}"
        elif exc.status_code == 405:
            allowed = allowed_methods(app.routes, request.scope)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} {cut(path)}: allowed methods are {', '.join(allowed)}"
        else:
            detail = str(exc.detail)
        return Problem(slug, status=exc.status_code, detail=detail, headers=headers).response(
            request
        )

    retry_after = str(getattr(app.state, "retry_after_seconds", 2))

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        return database_unavailable(exc, retry_after=retry_after).response(request)

    @app.exception_handler(sa_exc.DBAPIError)
    async def _dbapi(request: Request, exc: sa_exc.DBAPIError) -> JSONResponse:
        if not exc.connection_invalidated:
            raise exc
        return database_unavailable(exc, retry_after=retry_after).response(request)


def database_unavailable(error: Exception, *, retry_after: str) -> Problem:
    """503 database-unavailable with ``Retry-After``: the database is away or the API's
    connection pool stayed full (PARETONAS_DB_POOL_SIZE); a retry later can succeed."""
    if isinstance(error, sa_exc.TimeoutError):
        reason = "every database connection of this API process stayed busy"
    else:
        orig = getattr(error, "orig", None) or error
        lines = str(orig).strip().splitlines()
        reason = f"the database is unreachable ({type(orig).__name__}: {lines[0] if lines else ''})"
    log.warning("503 database-unavailable: %s", reason)
    return Problem(
        "database-unavailable",
        status=503,
        detail=f"{reason}; retry after {retry_after} s (operators: check PARETONAS_DATABASE_URL "
        "and PARETONAS_DB_POOL_SIZE)",
        headers={"Retry-After": retry_after},
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Sequence[BaseRoute], scope: Mapping[str, Any]) -> list[str]:
    """The methods some route fully matches for the request ``scope``'s path (``Allow``)."""
    allowed = []
    for method in _METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return sorted(allowed)
