"""The `paretonas` command group: lazy sub-commands, the listing, unknown names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner

from service.cli import COMMANDS, app, load_command


def test_help_lists_every_command_without_importing_torch_or_the_commands() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from service.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(result.output)\n"
        "heavy = sorted(m for m in ('torch', 'optuna', 'sklearn', 'sqlalchemy')\n"
        "               if m in sys.modules)\n"
        "commands = sorted(m for m in sys.modules if m.startswith('service.commands.'))\n"
        "print('IMPORTED', heavy, commands)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    assert "IMPORTED [] []" in out
    for name, summary in COMMANDS.items():
        assert name in out
        assert summary in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_listed_command_loads_and_answers_help(name: str) -> None:
    command = load_command(name)
    assert isinstance(command, TyperCommand | TyperGroup)
    assert command.name == name
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"{name} [OPTIONS]" in " ".join(result.output.split())


def test_unknown_command_exits_2_and_names_the_valid_ones() -> None:
    result = CliRunner().invoke(app, ["serach"])
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())
    assert ("No such command 'serach'. Commands: db, demo, export, keys, layers, scheduler, "
            "search, serve, worker.") in text


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["search", "--trials", "abc"],
         "error: Invalid value for '--trials': Input should be a valid integer, unable to parse "
         "string as an integer; python -m service.cli search --help lists the options"),
        (["search", "--bogus"],
         "error: No such option: --bogus (Possible options: --out); python -m service.cli "
         "search --help lists the options"),
        (["serach"],
         "error: No such command 'serach'. Commands: db, demo, export, keys, layers, scheduler, "
         "search, serve, worker; python -m service.cli --help lists the options"),
    ],
)
def test_a_flag_click_refuses_is_one_line_and_exit_2(args: list[str], line: str) -> None:
    """Through the real entry point (``main``): no usage box, no traceback."""
    done = subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "80"})
    assert (done.returncode, done.stderr.splitlines(), done.stdout) == (2, [line], "")
