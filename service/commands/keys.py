"""`paretonas keys`: create, list and revoke API keys.

paretonas keys create --name alice    # prints the key once; only its sha256 is stored
paretonas keys list
paretonas keys revoke 3
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from service.db.engine import make_engine, read_session, write_session
from service.db.tables import ApiKey
from service.keys import create_key, revoke_key
from service.settings import get_settings

__all__ = ["keys"]

keys = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@keys.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who the key is for (shown in `keys list`).")],
) -> None:
    """Create a key and print it once (store it now: only its hash is kept)."""
    engine = make_engine(get_settings().database_url)
    try:
        with write_session(engine) as session:
            new = create_key(session, name=name)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--name") from None
    finally:
        engine.dispose()
    typer.echo(f"created key {new.id} ({new.name}); it is shown only once:", err=True)
    typer.echo(new.key)


@keys.command("list")
def list_keys() -> None:
    """List keys: id, prefix, name, created, revoked (never the secret)."""
    engine = make_engine(get_settings().database_url)
    try:
        with read_session(engine) as session:
            rows = session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
    finally:
        engine.dispose()
    typer.echo(f"{'id':>4}  {'prefix':<8}  {'created':<20}  {'revoked':<20}  name")
    for row in rows:
        revoked = row.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if row.revoked_at else "-"
        created = row.created_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{row.id:>4}  {row.prefix:<8}  {created:<20}  {revoked:<20}  {row.name}")


@keys.command("revoke")
def revoke(key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`).")]) -> None:
    """Revoke a key: requests with it answer 401 from now on."""
    engine = make_engine(get_settings().database_url)
    try:
        with write_session(engine) as session:
            row = revoke_key(session, key_id=key_id)
    finally:
        engine.dispose()
    if row is None:
        typer.echo(f"no key with id {key_id}; see `paretonas keys list`", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id} ({row.name})")
