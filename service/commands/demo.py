"""`paretonas demo` (`bash scripts/demo.sh`): the whole service on one machine, end to end.

    paretonas demo                       # API + one worker on SQLite at 127.0.0.1:8000
    paretonas demo --exit-when-done      # stop once the search has ended (tests, CI)

Migrates the database, creates an API key and prints it, starts ``paretonas serve --workers 1`` (the
API and one embedded CPU worker), submits a search on the built-in digits dataset through the HTTP
API, prints where to look (the dashboard and how to sign in, API docs, curl lines), follows the job
until it ends (trials done, front size, hypervolume), prints the Pareto front, and keeps serving
until Ctrl-C. The service's own log
goes to ``<data dir>/demo-serve.log``. The layer kinds and their costs: ``paretonas layers``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from service.db import migrations
from service.db.engine import make_engine, write_session
from service.keys import create_key
from service.settings import get_settings

__all__ = ["demo"]

ENDED = ("succeeded", "failed", "cancelled")


def demo(
    host: Annotated[str, typer.Option(help="Address the API binds to.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
    n_trials: Annotated[int, typer.Option(min=1, help="Trials of the demo search.")] = 12,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs per trial.")] = 8,
    exit_when_done: Annotated[
        bool, typer.Option("--exit-when-done", help="Stop when the search ends (else Ctrl-C).")
    ] = False,
) -> None:
    """Run the API and a worker, submit a search on digits, follow it, print its Pareto front."""
    settings = get_settings()
    _check_port_free(host, port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrations.upgrade(settings.database_url)
    key = _create_key(settings.database_url)
    base = f"http://{host}:{port}"
    typer.echo(f"database     {settings.database_url}")
    typer.echo(f"optuna       {settings.optuna_storage}")
    typer.echo(f"API key      {key}   (shown once; only its sha256 is stored)")
    log_path = settings.data_dir / "demo-serve.log"
    # SIGTERM (kill, systemd, a CI timeout) stops the demo as Ctrl-C does: by default it would end
    # Python at once, skip the finally below and orphan the server and its worker.
    signal.signal(signal.SIGTERM, _interrupt)
    server = _start_server(host=host, port=port, log_path=log_path)
    try:
        _wait_healthy(base, server=server, log_path=log_path)
        job = _submit(base, key=key, n_trials=n_trials, epochs=epochs)
        _print_where_to_look(base, key=key, job_id=job["id"], log_path=log_path)
        job = _follow(base, key=key, job_id=job["id"], server=server, log_path=log_path)
        _print_front(_get(f"{base}/api/v1/jobs/{job['id']}/pareto", key=key))
        if job["status"] != "succeeded":
            typer.echo(f"the search ended {job['status']}: {job['error']}", err=True)
            raise typer.Exit(1)
        if not exit_when_done:
            typer.echo(
                f"\nstill serving at {base} (dashboard: {base}/jobs/{job['id']}, docs: "
                f"{base}/docs); Ctrl-C to stop"
            )
            server.wait()
    except KeyboardInterrupt:
        typer.echo("\nstopping (the worker releases its trial)...")
    finally:
        _stop_server(server)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise typer.BadParameter(
                f"got {host}:{port}, which is in use ({error.strerror}); pick another, "
                "e.g. --port 8001",
                param_hint="--port",
            ) from None


def _create_key(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        with write_session(engine) as session:
            return create_key(session, name="demo").key
    finally:
        engine.dispose()


def _start_server(*, host: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """``paretonas serve --workers 1`` in its own process group, logging to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                "1",
                "--worker-grace",
                "30",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops the server in order
        )


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole process group: the API stops, and the worker releases its trial
    and exits. (uvicorn re-raises SIGTERM after shutting down, so a server that was only sent
    SIGTERM itself would die before stopping its workers.) SIGKILL whatever is left after 60 s."""
    group = server.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server.poll()  # reap the server so the group can empty
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    server.wait()


def _request(url: str, *, key: str | None = None, body: Any = None) -> Any:
    headers = {"Accept": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        raise RuntimeError(
            f"{request.get_method()} {url} answered {error.code}: {detail}"
        ) from None


def _get(url: str, *, key: str) -> Any:
    return _request(url, key=key)


def _wait_healthy(base: str, *, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            _fail(f"the server exited with {server.returncode}", log_path)
        try:
            _request(f"{base}/healthz")
            return
        except (OSError, RuntimeError):
            time.sleep(0.2)
    _fail("the server did not answer /healthz within 120 s", log_path)


def _submit(base: str, *, key: str, n_trials: int, epochs: int) -> dict[str, Any]:
    body = {
        "dataset": "digits",
        "n_trials": n_trials,
        "seed": 0,
        "parallelism": 1,
        "train": {"epochs": epochs, "finetune_epochs": 1},
    }
    job: dict[str, Any] = _request(f"{base}/api/v1/jobs", key=key, body=body)
    typer.echo(f"submitted    {job['id']}: {n_trials} trials on digits, {epochs} epochs each")
    return job


def _print_where_to_look(base: str, *, key: str, job_id: str, log_path: Path) -> None:
    jobs = f"{base}/api/v1/jobs/{job_id}"
    typer.echo(f"dashboard    {base}/jobs/{job_id}")
    typer.echo("             sign in there with the API key above (it is the dashboard password)")
    typer.echo(f"API docs     {base}/docs")
    typer.echo(f"service log  {log_path}")
    typer.echo(f"the job      curl -H 'Authorization: Bearer {key}' {jobs}")
    typer.echo(f"its front    curl -H 'Authorization: Bearer {key}' {jobs}/pareto")
    typer.echo(f"its trials   curl -H 'Authorization: Bearer {key}' {jobs}/trials")
    typer.echo("")


def _follow(
    base: str, *, key: str, job_id: str, server: subprocess.Popen[bytes], log_path: Path
) -> dict[str, Any]:
    """Print a line whenever the job's counts change; return the job once it has ended."""
    last = None
    while True:
        if server.poll() is not None:
            _fail(f"the server exited with {server.returncode}", log_path)
        job: dict[str, Any] = _get(f"{base}/api/v1/jobs/{job_id}", key=key)
        counts = job["trials"]
        state = (job["status"], counts["complete"], counts["running"], counts["failed"])
        if state != last:
            last = state
            hv = "-" if job["hypervolume"] is None else f"{job['hypervolume']:.4f}"
            typer.echo(
                f"{job['status']:<9}  trials {counts['complete']}/{job['n_trials']} complete, "
                f"{counts['running']} running, {counts['failed']} failed   "
                f"front {job['front_size']}   hypervolume {hv}"
            )
        if job["status"] in ENDED:
            return job
        time.sleep(0.5)


def _kinds(spec: dict[str, Any]) -> str:
    layers = spec.get("layers") or []
    return " ".join(f"{layer.get('kind')}x{layer.get('multiplier')}" for layer in layers)


def _print_front(pareto: dict[str, Any]) -> None:
    members = pareto["members"]
    typer.echo(f"\nPareto front of {pareto['job_id']} ({len(members)} members, by parameters):")
    typer.echo(f"{'trial':>5}  {'val acc':>7}  {'test acc':>8}  {'params':>9}  {'MACs':>9}  layers")
    for m in members:
        test = "-" if m["test_accuracy"] is None else f"{m['test_accuracy']:.4f}"
        macs = "-" if m["macs"] is None else f"{m['macs']:,}"
        typer.echo(
            f"{m['trial_number']:>5}  {m['val_accuracy']:>7.4f}  {test:>8}  {m['params']:>9,}  "
            f"{macs:>9}  {_kinds(m['spec'])}"
        )


def _fail(message: str, log_path: Path) -> None:
    tail = log_path.read_text(errors="replace").splitlines()[-20:] if log_path.exists() else []
    typer.echo(f"{message}; the last lines of {log_path}:", err=True)
    for line in tail:
        typer.echo(f"  {line}", err=True)
    raise typer.Exit(1)
