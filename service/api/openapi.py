"""The OpenAPI document: every status code a route answers, problem+json bodies, links, examples.

Routes declare the problems only they answer (``problems(404, 409)``); ``install_openapi`` adds
those every ``/api/v1`` route can answer (401 no or bad key, 413 body too large, 422 invalid
request, 503 database away), puts the ``Problem`` schema in the components, and links the job
that POST /jobs returns to the routes that read it (``$response.body#/id``), so generated clients
and stateful testers follow a job from its creation.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id

from service.api.problems import PROBLEM_MEDIA_TYPE
from service.api.schemas import ProblemPublic

__all__ = ["COMMON_API_PROBLEMS", "install_openapi", "operation_id", "problems"]

_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "No API key, an unknown or revoked one, or a key outside the Authorization header",
    404: "No such job (or schedule, or front member) among yours",
    409: "Conflict with the job's state or an earlier request",
    413: "Request body larger than PARETONAS_MAX_BODY_BYTES",
    422: "Invalid request: the field, the value and what is allowed",
    429: "A quota of this key is used up (see Retry-After)",
    503: "The database is unreachable or busy (see Retry-After)",
}
COMMON_API_PROBLEMS = (401, 413, 422, 503)
_REF = {"$ref": "#/components/schemas/ProblemPublic"}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": _REF}},
    }
    if status in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route for the problems it answers beyond the common ones."""
    return {status: _problem_response(status) for status in statuses}


def _links() -> dict[str, Any]:
    job_id = {"job_id": "$response.body#/id"}
    return {
        name: {"operationId": operation, "parameters": job_id}
        for name, operation in (
            ("GetJob", "get_job"),
            ("CancelJob", "cancel_job"),
            ("ListTrials", "list_trials"),
            ("GetPareto", "get_pareto"),
        )
    }


def operation_id(route: APIRoute) -> str:
    """An API route's operationId is its handler's name (``get_job``); others keep FastAPI's."""
    if route.path.startswith("/api/"):
        return route.name
    return generate_unique_id(route)


def install_openapi(app: FastAPI, *, api_prefix: str) -> None:
    """Replace ``app.openapi`` with the completed document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["ProblemPublic"] = ProblemPublic.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                if path.startswith(api_prefix):
                    for common in COMMON_API_PROBLEMS:
                        responses[str(common)] = _problem_response(common)
                    operation.setdefault("security", [{"HTTPBearer": []}])
                    if "requestBody" in operation:
                        responses["400"] = _problem_response(400)
                    if "{" in path and "404" not in responses:  # an id that names nothing
                        responses["404"] = _problem_response(404)
                elif str(422) in responses and not operation.get("parameters"):
                    del responses["422"]
                if path == f"{api_prefix}/jobs" and method == "post":
                    for success in ("200", "202"):
                        if success in responses:
                            responses[success]["links"] = _links()
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
