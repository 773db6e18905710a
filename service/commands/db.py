"""`paretonas db`: migrate the service database (PARETONAS_DATABASE_URL).

paretonas db upgrade            # to the newest revision (run before serving)
paretonas db downgrade base     # drop every table of ours (Optuna's stay)
paretonas db current
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from service.db import migrations
from service.db.engine import make_engine
from service.settings import get_settings

__all__ = ["db"]

db = typer.Typer(help="Migrate the service database.", no_args_is_help=True)


def _where(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@db.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate up to REVISION (default: head)."""
    url = get_settings().database_url
    migrations.upgrade(url, revision)
    typer.echo(f"{_where(url)}: at {_current(url)}")


@db.command("downgrade")
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; base drops our tables.")],
) -> None:
    """Migrate down to REVISION (e.g. -1, base)."""
    url = get_settings().database_url
    migrations.downgrade(url, revision)
    typer.echo(f"{_where(url)}: at {_current(url)}")


@db.command("current")
def current() -> None:
    """Print the database's revision and whether it is the newest (exit 1 when behind)."""
    url = get_settings().database_url
    revision, head = _current(url), migrations.head_revision()
    state = "head" if revision == head else f"behind: head is {head}; run `paretonas db upgrade`"
    typer.echo(f"{_where(url)}: {revision} ({state})")
    if revision != head:
        raise typer.Exit(1)


def _current(url: str) -> str:
    engine = make_engine(url)
    try:
        return migrations.current_revision(engine) or "empty (no revision)"
    finally:
        engine.dispose()
