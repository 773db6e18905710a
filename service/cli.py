"""The `paretonas` command. Each sub-command lives in its own module under service/commands/.

Sub-command modules are imported only when that sub-command runs: `search`, `serve` and `worker`
pull in torch, Optuna and scikit-learn (about 5 s of imports on a small machine), which
`paretonas --help`, `paretonas keys list` or `paretonas db current` never need. The listing in
`--help` comes from the one-line summaries in ``COMMANDS`` below.

``main`` (the installed `paretonas` script) lets no traceback reach a user: a flag click refuses
(wrong type, unknown option) is one line naming it, exit 2; an error no command handled prints one
line and exits 1 (``PARETONAS_DEBUG=1`` shows the traceback instead).
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
import typer.main
from typer._click import Context as ClickContext  # typer vendors click; its TyperGroup takes this
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import Abort

# name -> the line `paretonas --help` shows. Module service.commands.<name> defines <name>: a
# Typer app (a sub-group) or a command function.
COMMANDS: dict[str, str] = {
    "db": "Migrate the service database.",
    "demo": "The whole service on SQLite with a digits search.",
    "export": "Write a front member's model (safetensors or ONNX) to a file.",
    "keys": "Create, list and revoke API keys.",
    "layers": "Parameters and MACs of every layer kind.",
    "scheduler": "Turn due cron schedules into jobs (also runs inside serve).",
    "search": "Run a search on this machine.",
    "serve": "The REST API, optionally with worker processes.",
    "worker": "Claim and train trials until stopped.",
}


def load_command(name: str) -> TyperCommand | TyperGroup:
    """Import the module of sub-command ``name`` and build its click command."""
    target = getattr(importlib.import_module(f"service.commands.{name}"), name)
    if not isinstance(target, typer.Typer):  # a command function: wrap it in a one-command app
        function, target = target, typer.Typer(add_completion=False)
        target.command(name)(function)
    command = typer.main.get_command(target)
    assert isinstance(command, TyperCommand | TyperGroup), type(command)
    command.name = name
    return command


class _LazyGroup(TyperGroup):
    """Lists sub-commands from ``COMMANDS``; imports one only when it is resolved to run."""

    def list_commands(self, ctx: ClickContext) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: ClickContext, cmd_name: str) -> TyperCommand | None:
        # Used for listings (--help): a placeholder carrying the summary, nothing imported.
        summary = COMMANDS.get(cmd_name)
        if summary is None:
            return None
        return TyperCommand(cmd_name, help=summary, short_help=summary)

    def resolve_command(
        self, ctx: ClickContext, args: list[str]
    ) -> tuple[str | None, TyperCommand | TyperGroup | None, list[str]]:
        name = args[0]
        if name not in COMMANDS:
            ctx.fail(f"No such command '{name}'. Commands: {', '.join(sorted(COMMANDS))}.")
        return name, load_command(name), args[1:]


app = typer.Typer(
    name="paretonas",
    cls=_LazyGroup,
    help="ParetoNAS: search for parameter-efficient networks (accuracy vs parameters).",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """ParetoNAS: search for parameter-efficient networks (accuracy vs parameters)."""


EXIT_INTERNAL = 1
EXIT_USAGE = 2


def main() -> None:
    """Run the `paretonas` command; an unexpected error is one line on stderr and exit 1."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError:
        sys.exit(EXIT_USAGE)  # `paretonas` alone: the help is printed already
    except ClickException as error:
        # A flag click itself refuses (a value of the wrong type, an unknown option or command):
        # one line naming it, like every command's own checks, instead of click's boxed usage.
        text = " ".join(error.format_message().split()).rstrip(".")
        ctx = getattr(error, "ctx", None)
        hint = f"; {ctx.command_path} --help lists the options" if ctx is not None else ""
        print(f"error: {text}{hint}", file=sys.stderr)
        sys.exit(error.exit_code)
    except Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)
    except Exception as error:
        if os.environ.get("PARETONAS_DEBUG"):
            raise
        text = " ".join(str(error).split()) or "(no message)"
        if len(text) > 400:
            text = text[:397] + "..."
        print(f"error: {type(error).__name__}: {text} (PARETONAS_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        sys.exit(EXIT_INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
