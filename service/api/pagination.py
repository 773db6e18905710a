"""Opaque cursors: base64url JSON the client hands back unchanged."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from service.api.problems import Problem

__all__ = ["decode_cursor", "encode_cursor", "invalid_cursor"]


def encode_cursor(data: dict[str, Any]) -> str:
    """An opaque token for ``data``."""
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, *, keys: tuple[str, ...]) -> dict[str, Any]:
    """The data of a cursor made by ``encode_cursor``; 422 invalid-cursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        data = None
    if not isinstance(data, dict) or set(data) != set(keys):
        raise invalid_cursor(token)
    return data


def invalid_cursor(token: str) -> Problem:
    """422 invalid-cursor for ``token``."""
    return Problem(
        "invalid-cursor",
        status=422,
        detail=f"cursor: got {token!r}; pass the next_cursor of the previous page unchanged",
    )
