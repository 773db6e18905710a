"""The check `paretonas serve` and `paretonas scheduler` make first: the database is at head."""

from __future__ import annotations

import typer

from service.db import migrations
from service.db.engine import make_engine

__all__ = ["check_migrated"]


def check_migrated(url: str) -> None:
    """Exit 1 with the fix when the database at ``url`` is not at the head revision."""
    engine = make_engine(url)
    try:
        current = migrations.current_revision(engine)
    finally:
        engine.dispose()
    head = migrations.head_revision()
    if current != head:
        typer.echo(
            f"the database is at revision {current or 'none'}, head is {head}: run "
            "`paretonas db upgrade` or `paretonas serve --migrate`",
            err=True,
        )
        raise typer.Exit(1)
