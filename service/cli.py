"""The `paretonas` command. Each sub-command lives in its own module under service/commands/."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="paretonas",
    help="ParetoNAS: search for parameter-efficient networks (accuracy vs parameters).",
    no_args_is_help=True,
    add_completion=False,
)

# (module under service.commands, attribute): a Typer app (sub-group) or a command function.
_COMMANDS: list[tuple[str, str]] = [
    ("db", "db"),
    ("demo", "demo"),
    ("keys", "keys"),
    ("layers", "layers"),
    ("search", "search"),
    ("serve", "serve"),
    ("worker", "worker"),
]

for _module, _name in _COMMANDS:
    _obj = getattr(importlib.import_module(f"service.commands.{_module}"), _name)
    if isinstance(_obj, typer.Typer):
        app.add_typer(_obj, name=_module)
    else:
        app.command(_module)(_obj)

if __name__ == "__main__":  # pragma: no cover
    app()
