"""`paretonas worker --ray` refuses what it cannot do: exit code 2 and the fix (no Ray head)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.settings import get_settings


@pytest.fixture(autouse=True)
def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PARETONAS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PARETONAS_RAY_ADDRESS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["worker", *args])
    unboxed = re.sub("[│╭╮╰╯─]", " ", result.output)  # rich draws errors in a box
    return result.exit_code, " ".join(unboxed.split())


@pytest.mark.parametrize("source", ["option", "setting"])
def test_without_the_ray_extra_it_exits_2_naming_the_extra(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    if source == "setting":
        monkeypatch.setenv("PARETONAS_RAY_ADDRESS", "auto")
    code, output = _invoke(*(["--ray", "auto"] if source == "option" else []))
    assert (code, output) == (
        2,
        "--ray needs Ray, an optional extra of ParetoNAS: pip install 'paretonas[ray]' "
        "(or run plain workers: paretonas worker --device cuda:N)",
    )


def test_device_and_once_are_refused_with_ray() -> None:
    code, output = _invoke("--ray", "auto", "--device", "cuda:0")
    assert code == 2
    assert (
        "Invalid value for --device: got 'cuda:0' with --ray; Ray picks each trial's device (a "
        "GPU when the job asks gpus_per_trial > 0): drop --device" in output
    )
    code, output = _invoke("--ray", "auto", "--once")
    assert code == 2
    assert (
        "Invalid value for --once: --once runs one trial in a plain worker; the Ray driver runs "
        "until SIGTERM: drop --once or --ray" in output
    )
