"""``RequestGuard``: the checks every request passes before any route sees it (pure ASGI).

- The body is read here, at most ``max_body_bytes`` of it: a larger ``Content-Length`` answers 413
  before a byte is read, and a body that grows past the limit while streaming answers 413 as soon
  as it does (the rest is never read). What was read is handed on unchanged.
- A JSON body nested deeper than ``max_json_depth`` answers 422 json-too-deep before it is parsed
  (Python's parser would recurse, pydantic would refuse to serialise it).
- A NUL byte in the query string answers 422 naming the parameter (PostgreSQL text cannot hold
  one).
- An API key in the query string (``?api_key=``, ``?token=``, any ``pnas_`` value) answers 401
  key-in-url: keys go only in the Authorization header, never in URLs that proxies and access logs
  keep.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import Problem, clip
from service.keys import KEY_PREFIX

__all__ = ["SECRET_QUERY_NAMES", "RequestGuard", "json_depth"]

SECRET_QUERY_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "token",
        "access_token",
        "auth",
        "authorization",
        "bearer",
        "password",
        "secret",
    }
)
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte but the brackets
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in the JSON text ``body`` (0 for a scalar);
    brackets inside strings do not count. Linear time, no recursion."""
    brackets = _STRINGS.sub(b'""', body).translate(None, _BRACKETS)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


class RequestGuard:
    """ASGI middleware: body size and JSON depth limits, NUL and key-in-URL refusals."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _query_problem(scope.get("query_string", b""))
        body: bytes | None = None
        if problem is None:
            body, problem = await self._read_body(scope, receive)
        if problem is not None:
            await problem.response_at(scope.get("path", ""))(scope, receive, send)
            return
        assert body is not None
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, Problem | None]:
        limit = self.max_body_bytes
        length = _content_length(scope)
        if length is not None and length > limit:
            return b"", _too_large(f"Content-Length is {length} bytes", limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the route sees an empty body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", _too_large(f"more than {limit} bytes were sent", limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and body.lstrip()[:1] in (b"[", b"{"):
            depth = json_depth(body)
            if depth > self.max_json_depth:
                return body, Problem(
                    "json-too-deep",
                    status=422,
                    detail=f"body: JSON nested {depth} levels deep; at most "
                    f"{self.max_json_depth} allowed (operators: PARETONAS_MAX_JSON_DEPTH)",
                    path="body",
                    limit=self.max_json_depth,
                )
        return body, None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(what: str, limit: int) -> Problem:
    return Problem(
        "payload-too-large",
        status=413,
        detail=f"request body: {what}; at most {limit} bytes allowed "
        "(operators: PARETONAS_MAX_BODY_BYTES)",
        path="body",
        limit=limit,
    )


def _query_problem(query_string: bytes) -> Problem | None:
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return None  # FastAPI answers what it cannot parse
    for name, value in pairs:
        if name.lower() in SECRET_QUERY_NAMES or value.startswith(KEY_PREFIX):
            return Problem(
                "key-in-url",
                status=401,
                detail=f"query parameter {clip(name)}: API keys are accepted only in the "
                "Authorization header (Authorization: Bearer <key>); a key sent in a URL may "
                "be logged on the way, so revoke it (paretonas keys revoke ID) and make a new one",
                headers={"WWW-Authenticate": "Bearer"},
                path=f"query.{name[:40]}",
            )
        if "\x00" in name or "\x00" in value:
            return Problem(
                "validation-error",
                status=422,
                detail=f"query parameter {clip(name, 40)}: contains a NUL byte (%00); remove it",
                errors=[{"path": f"query.{name[:40]}", "message": "NUL byte not allowed"}],
            )
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
