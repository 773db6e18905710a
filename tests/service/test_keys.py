"""API keys: shown once, stored as sha256 only; `paretonas keys` and `paretonas db` commands."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from service.cli import app
from service.db.engine import read_session, write_session
from service.db.migrations import head_revision
from service.db.tables import ApiKey
from service.keys import authenticate, create_key, revoke_key
from service.settings import get_settings


def test_key_is_stored_as_its_hash_only(db_engine: Engine) -> None:
    with write_session(db_engine) as session:
        new = create_key(session, name="alice")
    with read_session(db_engine) as session:
        row = session.scalars(select(ApiKey)).one()
        assert authenticate(session, new.key) == row
        assert authenticate(session, new.key + "x") is None
        assert authenticate(session, "Bearer " + new.key) is None
    assert new.key.startswith("pnas_") and len(new.key) == 5 + 43
    assert (row.name, row.prefix, row.key_hash) == (
        "alice",
        new.key[:8],
        hashlib.sha256(new.key.encode()).hexdigest(),
    )
    assert row.revoked_at is None


def test_revoke(db_engine: Engine) -> None:
    with write_session(db_engine) as session:
        new = create_key(session, name="alice")
    with write_session(db_engine) as session:
        first = revoke_key(session, key_id=new.id)
        assert first is not None
        revoked_at = first.revoked_at
    with write_session(db_engine) as session:
        again = revoke_key(session, key_id=new.id)
        assert again is not None and again.revoked_at == revoked_at  # idempotent
        assert revoke_key(session, key_id=new.id + 1) is None
    with read_session(db_engine) as session:
        assert authenticate(session, new.key) is None


def test_empty_name_is_refused(db_engine: Engine) -> None:
    with (
        pytest.raises(ValueError, match="name: got ' '; give 1 to 100 characters"),
        write_session(db_engine) as session,
    ):
        create_key(session, name=" ")


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PARETONAS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_keys_commands(cli_env: None, db_engine: Engine) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--name", "alice"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    with read_session(db_engine) as session:
        row = authenticate(session, key)
        assert row is not None and row.name == "alice"
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and lines[1].split()[:2] == [str(row.id), key[:8]]
    assert key not in listed.stdout
    revoked = runner.invoke(app, ["keys", "revoke", str(row.id)])
    assert (revoked.exit_code, revoked.stdout) == (0, f"revoked key {row.id} (alice)\n")
    unknown = runner.invoke(app, ["keys", "revoke", "999"])
    assert unknown.exit_code == 1
    assert "no key with id 999; see `paretonas keys list`" in unknown.stderr


def test_db_commands(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARETONAS_DATABASE_URL", empty_database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    head = head_revision()
    try:
        behind = runner.invoke(app, ["db", "current"])
        assert behind.exit_code == 1
        head = head_revision()
        assert f"empty (no revision) (behind: head is {head}" in behind.stdout
        assert runner.invoke(app, ["db", "upgrade"]).stdout.endswith(f": at {head}\n")
        current = runner.invoke(app, ["db", "current"])
        assert (current.exit_code, current.stdout.endswith(f": {head} (head)\n")) == (0, True)
        down = runner.invoke(app, ["db", "downgrade", "base"])
        assert down.stdout.endswith(": at empty (no revision)\n")
    finally:
        get_settings.cache_clear()
