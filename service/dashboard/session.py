"""Dashboard sign-in sessions and CSRF tokens: the one place cookies are made and checked.

Sign-in turns an API key into a session:

- the cookie ``paretonas_session`` holds a random 256-bit token, signed and time-stamped with
  itsdangerous (``URLSafeTimedSerializer``): a forged or expired cookie is refused before any
  database read. It is HttpOnly, SameSite=Lax, Secure when the request came over HTTPS (uvicorn
  honours ``X-Forwarded-Proto`` from the proxies it trusts), and lives ``session_hours``.
- the table ``dashboard_sessions`` keeps only the token's sha256, the key, a CSRF token and the
  expiry: signing out deletes the row (a copied cookie dies with it), and a revoked key ends all
  its sessions at once.
- every state-changing form carries the session's CSRF token in the field ``csrf_token``
  (``check_csrf``); the sign-in form, which has no session yet, is guarded by a signed
  double-submit cookie ``paretonas_signin`` (``signin_token``, ``set_signin_cookie``,
  ``check_signin_token``).

The secret is ``settings.session_secret``, or a random one kept in ``<data_dir>/session-secret``
(mode 0600) so that sessions survive a restart; give every API replica the same secret.
FastAPI dependencies over these functions are in ``service.dashboard.deps``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from service.db.base import utcnow
from service.db.engine import write_session
from service.db.tables import ApiKey, DashboardSession
from service.settings import Settings

__all__ = [
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "SIGNIN_COOKIE",
    "SignedIn",
    "check_csrf",
    "check_signin_token",
    "clear_session_cookie",
    "current_session",
    "end_session",
    "session_secret",
    "set_session_cookie",
    "set_signin_cookie",
    "signin_token",
    "start_session",
]

SESSION_COOKIE = "paretonas_session"
SIGNIN_COOKIE = "paretonas_signin"
CSRF_FIELD = "csrf_token"
SIGNIN_SECONDS = 3600  # how long a sign-in form stays valid


@dataclass(frozen=True)
class SignedIn:
    """The signed-in caller of a dashboard request: their key and the session's CSRF token."""

    owner: ApiKey
    csrf_token: str
    token_hash: str


def session_secret(settings: Settings) -> str:
    """``settings.session_secret``, else the one in ``<data_dir>/session-secret`` (made once)."""
    if settings.session_secret:
        return settings.session_secret
    return _file_secret(settings.data_dir.resolve() / "session-secret")


@lru_cache(maxsize=8)
def _file_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(
            f"{path}: the session secret is {len(secret)} characters; delete the file (a new "
            "one is made) or set PARETONAS_SESSION_SECRET to at least 32 random characters"
        )
    return secret


@lru_cache(maxsize=16)
def _serializer(secret: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=salt)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _unsign(settings: Settings, *, value: str | None, salt: str, max_age: float) -> str | None:
    if not value:
        return None
    try:
        token = _serializer(session_secret(settings), salt).loads(value, max_age=int(max_age))
    except BadSignature:  # also SignatureExpired
        return None
    return token if isinstance(token, str) else None


def start_session(engine: Engine, *, owner: ApiKey, settings: Settings) -> str:
    """Store a new session of ``owner``; returns the signed cookie value. Expired sessions of
    every key are deleted on the way (the table stays the size of the live sessions)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with write_session(engine) as session:
        session.execute(delete(DashboardSession).where(DashboardSession.expires_at < now))
        session.add(
            DashboardSession(
                token_hash=_hash(token),
                key_id=owner.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + timedelta(hours=settings.session_hours),
            )
        )
    return _serializer(session_secret(settings), SESSION_COOKIE).dumps(token)


def current_session(request: Request, session: Session, settings: Settings) -> SignedIn | None:
    """The live session of the request's cookie (key not revoked, not expired), else None."""
    token = _unsign(
        settings,
        value=request.cookies.get(SESSION_COOKIE),
        salt=SESSION_COOKIE,
        max_age=settings.session_hours * 3600,
    )
    if token is None:
        return None
    row = session.execute(
        select(DashboardSession, ApiKey)
        .join(ApiKey, ApiKey.id == DashboardSession.key_id)
        .where(
            DashboardSession.token_hash == _hash(token),
            DashboardSession.expires_at > utcnow(),
            ApiKey.revoked_at.is_(None),
        )
    ).one_or_none()
    if row is None:
        return None
    stored, owner = row
    return SignedIn(owner=owner, csrf_token=stored.csrf_token, token_hash=stored.token_hash)


def end_session(engine: Engine, *, signed_in: SignedIn) -> None:
    """Sign out: delete the session row (its cookie no longer signs anyone in)."""
    with write_session(engine) as session:
        session.execute(
            delete(DashboardSession).where(DashboardSession.token_hash == signed_in.token_hash)
        )


def _cookie(
    response: Response, *, request: Request, name: str, value: str, max_age: int, path: str = "/"
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def set_session_cookie(
    response: Response, *, request: Request, value: str, settings: Settings
) -> None:
    """Set the session cookie made by ``start_session``."""
    max_age = int(settings.session_hours * 3600)
    _cookie(response, request=request, name=SESSION_COOKIE, value=value, max_age=max_age)


def clear_session_cookie(response: Response, *, request: Request) -> None:
    """Remove the session cookie from the browser."""
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def signin_token(settings: Settings) -> tuple[str, str]:
    """(token, cookie value) for a sign-in form: the form carries the token, the signed cookie
    ``paretonas_signin`` beside it the same token (``set_signin_cookie``)."""
    token = secrets.token_urlsafe(32)
    return token, _serializer(session_secret(settings), SIGNIN_COOKIE).dumps(token)


def set_signin_cookie(response: Response, *, request: Request, value: str) -> None:
    """Set the sign-in form's double-submit cookie made by ``signin_token``."""
    _cookie(response, request=request, name=SIGNIN_COOKIE, value=value, max_age=SIGNIN_SECONDS)


def check_signin_token(request: Request, form_token: str | None, *, settings: Settings) -> bool:
    """True when the sign-in form's token matches its signed cookie."""
    expected = _unsign(
        settings,
        value=request.cookies.get(SIGNIN_COOKIE),
        salt=SIGNIN_COOKIE,
        max_age=SIGNIN_SECONDS,
    )
    return bool(expected and form_token and hmac.compare_digest(expected, form_token))


def check_csrf(signed_in: SignedIn, form_token: str | None) -> bool:
    """True when a form's ``csrf_token`` is the session's."""
    return bool(form_token) and hmac.compare_digest(signed_in.csrf_token, str(form_token))
