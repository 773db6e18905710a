"""Shared database fixtures of the service tests: every test runs on SQLite AND PostgreSQL.

- ``db_backend``: "sqlite" or "postgres" (the latter marked ``postgres``).
- ``database_url``: a service database migrated to head with empty tables. SQLite: a copy of a
  file migrated once per session. PostgreSQL: a database ``paretonas_test_<random>`` created and
  migrated once per session (so concurrent test runs never collide), tables truncated per test,
  dropped at the end.
- ``empty_database_url``: a database without any table (migration tests).
- ``db_engine``, ``settings``: an engine on ``database_url``; Settings pointing at it, with the
  Optuna storage in a separate SQLite file under the test's tmp_path.
- ``client``, ``make_key``, ``auth``: a TestClient on the real app, API keys, Bearer headers.

The server is PARETONAS_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
Without it the postgres tests skip, except under CI=true, where a missing server fails them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from service.api import create_app
from service.db.engine import make_engine, write_session
from service.db.migrations import upgrade
from service.db.tables import Base
from service.keys import create_key
from service.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "PARETONAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _admin() -> Engine:
    return create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_postgres_database(prefix: str = "paretonas_test") -> str:
    """Create an empty database on the test server; returns its URL. Skips (fails on CI) when
    the server cannot be reached."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        message = f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable: {error.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: a missing server is a failure)")
        pytest.skip(message)
    finally:
        admin.dispose()
    url = make_url(POSTGRES_ADMIN_URL).set(database=name)
    return url.render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by ``create_postgres_database`` (closing its connections)."""
    name = make_url(url).database
    admin = _admin()
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "service.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_session_url() -> Iterator[str]:
    url = create_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest) -> str:
    """The backend of this run of the test."""
    return str(request.param)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> str:
    """A migrated service database with empty tables, on ``db_backend``."""
    if db_backend == "sqlite":
        path = tmp_path / "service.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_postgres_session_url")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
    return url


@pytest.fixture
def empty_database_url(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """A database without any table, on ``db_backend`` (dropped afterwards on PostgreSQL)."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def db_engine(database_url: str) -> Iterator[Engine]:
    """The service's engine on ``database_url`` (SQLite: WAL, BEGIN IMMEDIATE for writes)."""
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings on the test database; Optuna in its own SQLite file; small limits."""
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        optuna_storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        datasets={},
        limits={"max_trials": 500, "max_parallelism": 8},
    )


@pytest.fixture
def make_key(db_engine: Engine) -> Callable[[str], str]:
    """Create an API key named ``name``; returns the plain key."""

    def make(name: str = "alice") -> str:
        with write_session(db_engine) as session:
            return create_key(session, name=name).key

    return make


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient on the real app over ``settings`` (lifespan run)."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def auth(make_key: Callable[[str], str]) -> dict[str, str]:
    """Authorization headers of a fresh key (owner "alice")."""
    return {"Authorization": f"Bearer {make_key('alice')}"}
