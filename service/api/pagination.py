"""Opaque cursors: base64url JSON the client hands back unchanged.

Every value read back from a cursor is checked before it reaches a query: an offset or a row id
is an integer in [0, ``MAX_OFFSET``], a timestamp an ISO 8601 time with an offset that converts to
UTC, an id a short printable string (no NUL, no lone surrogate); anything else is 422
invalid-cursor (never a database error).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from service.api.problems import Problem, clip

__all__ = [
    "MAX_OFFSET",
    "decode_cursor",
    "decode_keyset",
    "decode_offset",
    "decode_row_id",
    "encode_cursor",
    "invalid_cursor",
]

MAX_OFFSET = 2**31 - 1  # the largest an INTEGER column (and OFFSET on every backend) takes
MAX_ID_CHARS = 64


def encode_cursor(data: dict[str, Any]) -> str:
    """An opaque token for ``data``."""
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, *, keys: tuple[str, ...]) -> dict[str, Any]:
    """The data of a cursor made by ``encode_cursor``; 422 invalid-cursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or set(data) != set(keys):
        raise invalid_cursor(token)
    return data


def decode_offset(token: str) -> int:
    """The offset of a ``{"offset": n}`` cursor: an integer in [0, MAX_OFFSET]."""
    return _integer(token, key="offset")


def decode_row_id(token: str) -> int:
    """The row id of an ``{"id": n}`` cursor (the last row of the previous page)."""
    return _integer(token, key="id")


def _integer(token: str, *, key: str) -> int:
    value = decode_cursor(token, keys=(key,))[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OFFSET:
        raise invalid_cursor(
            token, why=f"its {key} {clip(value)} is not an integer in [0, {MAX_OFFSET}]"
        )
    return value


def decode_keyset(token: str) -> tuple[datetime, str]:
    """(created_at in UTC, id) of a ``{"created_at": ..., "id": ...}`` cursor (jobs and
    schedules pages)."""
    data = decode_cursor(token, keys=("created_at", "id"))
    created, key = data["created_at"], data["id"]
    try:
        when = datetime.fromisoformat(created) if isinstance(created, str) else None
        when = when.astimezone(UTC) if when is not None and when.tzinfo is not None else None
    except (ValueError, OverflowError):
        when = None
    if when is None:
        raise invalid_cursor(
            token,
            why=f"its created_at {clip(created)} is not an ISO 8601 "
            "time with a UTC offset within years 1 to 9999",
        )
    if not isinstance(key, str) or len(key) > MAX_ID_CHARS or not key.isprintable():
        raise invalid_cursor(token, why=f"its id {clip(key)} is not an id")
    return when, key


def invalid_cursor(token: str, *, why: str = "") -> Problem:
    """422 invalid-cursor for ``token``."""
    reason = f" ({why})" if why else ""
    return Problem(
        "invalid-cursor",
        status=422,
        detail=f"cursor: got {clip(token)}{reason}; pass the next_cursor of the previous page "
        "unchanged",
        path="query.cursor",
    )
