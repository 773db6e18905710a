"""Alembic environment for the service's tables.

Our history lives in ``paretonas_alembic_version`` and ``include_name``/``include_object`` hide
every table that is not ours, so Optuna's tables (``studies``, its own ``trials``, its own
``alembic_version``) are never seen, compared or dropped even when they share the database.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from service.db.engine import make_engine
from service.db.migrations import VERSION_TABLE, include_name, include_object
from service.db.tables import Base
from service.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return str(config.attributes.get("url") or get_settings().database_url)


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        include_object=include_object,
        compare_type=True,
        render_as_batch=True,  # SQLite cannot ALTER most things: copy-and-move tables
        **kwargs,
    )


def run_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through a connection passed in by the caller, or a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as own:
            _run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
