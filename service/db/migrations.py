"""Run and inspect the service's Alembic migrations (``paretonas db ...``, ``/readyz``, tests).

Only the service's own tables are ours: Optuna's live in the same database on some deployments and
keep their own Alembic history, so ours uses ``paretonas_alembic_version`` and filters names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from service.db.tables import Base

__all__ = [
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "include_name",
    "include_object",
    "upgrade",
]

VERSION_TABLE = "paretonas_alembic_version"
_OURS = frozenset(Base.metadata.tables)


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Reflect only our tables (never Optuna's) when comparing the database."""
    return type_ != "table" or name in _OURS


def include_object(obj: Any, name: str | None, type_: str, _reflected: bool, _compare: Any) -> bool:
    """Compare only our tables and what belongs to them."""
    if type_ == "table":
        return name in _OURS
    table = getattr(obj, "table", None)
    return table is None or table.name in _OURS


def _script_location() -> Path:
    """``alembic/`` next to the packages in a checkout, else in the working directory (images)."""
    beside = Path(__file__).resolve().parents[2] / "alembic"
    return beside if (beside / "env.py").is_file() else Path.cwd() / "alembic"


def alembic_config(url: str, *, connection: Connection | None = None) -> Config:
    """An Alembic config for ``url`` (or an open ``connection``), without reading alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(_script_location()))
    config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base``: no tables of ours)."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest revision in alembic/versions."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None, "alembic/versions holds no migration"
    return head


def current_revision(engine: Engine | Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    if isinstance(engine, Engine):
        with engine.connect() as connection:
            return current_revision(connection)
    context = MigrationContext.configure(engine, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()
