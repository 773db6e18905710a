"""Alembic on both backends: empty -> head -> empty, no autogenerate diff, Optuna left alone."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from service.db.engine import make_engine
from service.db.migrations import (
    VERSION_TABLE,
    current_revision,
    downgrade,
    head_revision,
    include_name,
    include_object,
    upgrade,
)
from service.db.tables import Base

OURS = {
    "api_keys",
    "jobs",
    "trials",
    "pareto_members",
    "hypervolume_history",
    "trial_weights",
    "schedules",
    "schedule_runs",
    "trial_epochs",
    "dashboard_sessions",
    "workers",
}
# What Optuna keeps in a database it shares: its own history table and a table of its own.
FOREIGN = {"alembic_version", "studies"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _add_foreign_tables(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
            connection.execute(text("INSERT INTO alembic_version VALUES ('optuna-v3.2.0.a')"))
            connection.execute(text("CREATE TABLE studies (study_id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()


def test_upgrade_then_downgrade_leaves_foreign_tables(empty_database_url: str) -> None:
    _add_foreign_tables(empty_database_url)
    upgrade(empty_database_url)
    assert _tables(empty_database_url) == OURS | FOREIGN | {VERSION_TABLE}
    engine = make_engine(empty_database_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            optuna_version = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert optuna_version.scalar_one() == "optuna-v3.2.0.a"
    finally:
        engine.dispose()
    downgrade(empty_database_url, "base")
    assert _tables(empty_database_url) == FOREIGN | {VERSION_TABLE}
    engine = make_engine(empty_database_url)
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_head_matches_the_tables(database_url: str) -> None:
    """The migrated schema equals the declared tables: autogenerate finds nothing to do."""
    _add_foreign_tables(database_url)  # and does not propose to drop Optuna's tables
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": include_name,
                    "include_object": include_object,
                    "version_table": VERSION_TABLE,
                },
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_filters_see_only_our_tables() -> None:
    assert [name for name in sorted(OURS | FOREIGN) if include_name(name, "table", None)] == sorted(
        OURS
    )
    assert include_name("alembic_version", "column", None)  # only tables are filtered
