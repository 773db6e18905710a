"""Liveness and readiness: /healthz (the process answers) and /readyz (database at head)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import EngineDep
from service.api.openapi import problems
from service.api.problems import Problem
from service.db.migrations import current_revision, head_revision

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (touches no database)."""
    return {"status": "ok"}


@router.get("/readyz", responses=problems(503))
def readyz(engine: EngineDep) -> dict[str, str]:
    """The database answers and its migrations are at head; 503 not-ready otherwise."""
    head = head_revision()
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise Problem(
            "not-ready",
            status=503,
            detail=f"database unreachable ({reason}); check PARETONAS_DATABASE_URL",
        ) from None
    if revision != head:
        raise Problem(
            "not-ready",
            status=503,
            detail=f"database at revision {revision or 'none'}, head is {head}; "
            "run `paretonas db upgrade`",
        )
    return {"status": "ready", "revision": head}
