"""API keys: created once (the plain key is shown once), stored only as a sha256 hash.

    key = "pnas_" + 43 url-safe characters (256 random bits)
    api_keys.prefix = key[:8]   (for display in ``paretonas keys list``)
    api_keys.key_hash = sha256(key).hexdigest()

A key is looked up by its hash; a revoked key (``revoked_at`` set) never authenticates again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.db.base import utcnow
from service.db.tables import ApiKey

__all__ = ["KEY_PREFIX", "NewKey", "authenticate", "create_key", "hash_key", "live_key_query",
           "revoke_key"]

KEY_PREFIX = "pnas_"
PREFIX_LENGTH = 8


def hash_key(key: str) -> str:
    """The stored form of a key: its sha256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``key`` is the only copy of the secret."""

    id: int
    name: str
    prefix: str
    key: str


def create_key(session: Session, *, name: str) -> NewKey:
    """Insert a new key named ``name``; the caller shows ``NewKey.key`` once."""
    if not name.strip() or len(name) > 100:
        raise ValueError(f"name: got {name!r}; give 1 to 100 characters, e.g. --name alice")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:PREFIX_LENGTH], key_hash=hash_key(key))
    session.add(row)
    session.flush()
    return NewKey(id=row.id, name=name, prefix=row.prefix, key=key)


def live_key_query(key: str) -> Select[ApiKey] | None:
    """The query for ``key``'s live (unrevoked) row; None when ``key`` cannot be a key. A caller
    may join what it reads next to it, to read both in one round trip."""
    if not key.startswith(KEY_PREFIX):
        return None
    return select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))


def authenticate(session: Session, key: str) -> ApiKey | None:
    """The live key row for ``key``; None for an unknown or revoked key."""
    query = live_key_query(key)
    return None if query is None else session.scalars(query).one_or_none()


def revoke_key(session: Session, *, key_id: int) -> ApiKey | None:
    """Revoke key ``key_id`` (idempotent: revoking twice keeps the first time); None if unknown."""
    row = session.get(ApiKey, key_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
