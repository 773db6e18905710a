"""`paretonas export`: a front member's model as a file, from a running service or a local run.

    paretonas export --job JOB_ID --trial N --format onnx --out model.onnx \\
        [--url http://127.0.0.1:8000] [--key KEY]      # or PARETONAS_URL, PARETONAS_API_KEY
    paretonas export --run runs/20261201-120000 --trial N --format onnx --out model.onnx

From a service it downloads ``GET /api/v1/jobs/{job}/trials/{N}/model?format=...``. From a
``paretonas search --out`` folder it copies ``models/trial-N.<format>``, or makes the ONNX file
from the safetensors one when the search ran without ``--onnx``. A problem (no such trial, not
on the front, a bad key, an unreachable service) prints one line naming it and exits 1; bad
arguments exit 2.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import typer

from models.errors import SpecError
from search.front_files import FORMATS, MODELS_DIR, model_path

__all__ = ["export"]

EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_SECONDS = 120.0  # an ONNX export on a busy service takes seconds


class _Failed(Exception):
    """One line for the user, exit 1."""


def _from_service(*, url: str, key: str | None, job: str, trial: int, fmt: str) -> bytes:
    if not key:
        raise _Failed("no API key: give --key or set PARETONAS_API_KEY (paretonas keys create)")
    path = (f"/api/v1/jobs/{urllib.parse.quote(job, safe='')}/trials/{trial}/model?"
            f"{urllib.parse.urlencode({'format': fmt})}")
    request = urllib.request.Request(url.rstrip("/") + path,
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read())["detail"]
        except (ValueError, KeyError, TypeError):
            detail = exc.reason
        raise _Failed(f"{url}: {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Failed(f"cannot reach the service at {url} ({reason}); give --url or set "
                      "PARETONAS_URL") from None


def _from_run(run: Path, *, trial: int, fmt: str) -> bytes:
    wanted = model_path(run, trial, fmt)
    if wanted.is_file():
        return wanted.read_bytes()
    source = model_path(run, trial, "safetensors")
    if not source.is_file():
        found = sorted(p.name for p in (run / MODELS_DIR).glob("trial-*.safetensors"))
        raise _Failed(f"--run: {str(source)!r} does not exist; this folder holds "
                      f"{', '.join(found) if found else 'no models'} (only front members are "
                      "written, by paretonas search --out)")
    from models.export import to_onnx
    from models.serialize import from_safetensors

    try:
        model, _ = from_safetensors(source.read_bytes())
    except SpecError as exc:
        raise _Failed(f"--run: {str(source)!r} cannot be rebuilt ({exc})") from None
    return to_onnx(model)


def export(
    trial: int = typer.Option(..., help="the trial number of a front member"),
    out: Path = typer.Option(..., help="the file to write"),
    fmt: str = typer.Option("safetensors", "--format", help="safetensors or onnx"),
    job: str | None = typer.Option(None, help="a job id on the service (with --url, --key)"),
    run: Path | None = typer.Option(None, help="a paretonas search --out folder instead"),
    url: str = typer.Option(DEFAULT_URL, envvar="PARETONAS_URL", help="the service's base URL"),
    key: str | None = typer.Option(None, envvar="PARETONAS_API_KEY", help="an API key",
                                   show_default=False),
) -> None:
    """Write a front member's model (safetensors or ONNX) to a file."""
    errors = typer.echo
    if fmt not in FORMATS:
        errors(f"error: --format: got {fmt!r}; allowed: {', '.join(FORMATS)}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if (job is None) == (run is None):
        errors("error: give exactly one of --job (a job on the service) and --run (a "
               "paretonas search --out folder)", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        if run is not None:
            data = _from_run(run, trial=trial, fmt=fmt)
        else:
            assert job is not None
            data = _from_service(url=url, key=key, job=job, trial=trial, fmt=fmt)
    except _Failed as exc:
        errors(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    errors(f"wrote {out} ({len(data):,} bytes, {fmt})", err=True)
