"""Idempotency-Key lookups, shared by POST /jobs and POST /schedules.

A create with a key first looks the key up among the owner's rows of its table: the same key with
the same body (``request_hash``) is a replay and answers the stored row; the same key with another
body is 409 idempotency-conflict, worded after the table ("job", "schedule"). Both tables hold the
key in a 255-character column, unique per owner, so the length check lives here too.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Engine, select

from service.api.problems import Problem, clip
from service.db.engine import read_session
from service.db.tables import ApiKey, Job, Schedule

__all__ = ["check_idempotency_key", "find_replay"]

Row = TypeVar("Row", Job, Schedule)


def check_idempotency_key(key: str) -> None:
    """422 for an Idempotency-Key longer than the 255 characters stored (jobs and schedules)."""
    if len(key) > 255:
        raise Problem(
            "validation-error",
            status=422,
            detail=f"Idempotency-Key: {len(key)} characters; use at most 255 (e.g. a UUID)",
            errors=[{"path": "header.Idempotency-Key", "message": "at most 255 characters"}],
        )


def find_replay(
    engine: Engine, table: type[Row], *, owner: ApiKey, key: str, digest: str
) -> Row | None:
    """The owner's row stored under ``key`` (a replay), None if there is none.

    Raises 422 for a key too long to store, 409 if the row was created from another body
    (``digest`` is the new request's hash); the problem names the row as ``job_id`` or
    ``schedule_id``.
    """
    check_idempotency_key(key)
    with read_session(engine) as session:
        row = session.scalars(
            select(table).where(table.owner_id == owner.id, table.idempotency_key == key)
        ).first()
    if row is not None and row.request_hash != digest:
        noun = table.__name__.lower()  # "job", "schedule"
        names_row: dict[str, Any] = {f"{noun}_id": row.id}
        raise Problem(
            "idempotency-conflict",
            status=409,
            detail=f"Idempotency-Key {clip(key)} was used for {noun} {row.id} with a different "
            f"body; send a new key for a new {noun}",
            **names_row,
        )
    return row
