"""/healthz and /readyz in-process, and `paretonas serve` as a real process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.db.migrations import head_revision
from service.settings import Settings

P = "https://paretonas.dev/problems/"
ROOT = Path(__file__).resolve().parents[2]


def test_healthz_and_readyz(client: TestClient) -> None:
    assert (client.get("/healthz").status_code, client.get("/healthz").json()) == (
        200,
        {"status": "ok"},
    )
    ready = client.get("/readyz")
    assert ready.status_code == 200  # no worker: degraded, still ready to serve the API
    assert (ready.json()["status"], ready.json()["revision"]) == ("degraded", head_revision())


def test_readyz_unmigrated(empty_database_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=empty_database_url)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": P + "not-ready",
        "title": "Service not ready",
        "status": 503,
        "detail": f"database at revision none, head is {head_revision()}; "
        "run `paretonas db upgrade`",
        "instance": "/readyz",
    }


def test_readyz_unreachable(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/nothing"
    with TestClient(create_app(Settings(data_dir=tmp_path, database_url=url))) as client:
        response = client.get("/readyz")
        healthy = client.get("/healthz")
    assert (response.status_code, healthy.status_code) == (503, 200)
    assert response.json()["type"] == P + "not-ready"
    assert response.json()["detail"].startswith("database unreachable (")


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    response = client.delete("/api/v1/jobs")
    assert (response.status_code, response.json()["type"]) == (405, P + "method-not-allowed")
    assert client.get("/api/v1/nothing").json()["detail"] == "no route GET /api/v1/nothing"


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert paths == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}:cancel",
        "/api/v1/jobs/{job_id}/trials",
        "/api/v1/jobs/{job_id}/pareto",
        "/api/v1/jobs/{job_id}/trials/{number}/model",
        "/api/v1/schedules",
        "/api/v1/schedules/{schedule_id}",
        "/api/v1/schedules/{schedule_id}:run",
        "/api/v1/schedules/{schedule_id}/runs",
        "/api/v1/jobs/{job_id}/trials/{number}",
        "/api/v1/jobs/{job_id}/points",
        "/api/v1/jobs/{job_id}/export/front.csv",
        "/api/v1/jobs/{job_id}/export/front.json",
        "/api/v1/jobs/{job_id}/export/trials.csv",
        "/api/v1/jobs/{job_id}/export/trials.json",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_process(tmp_path: Path) -> None:
    """`paretonas serve --migrate` on a fresh data dir answers /healthz and /readyz."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETONAS_")}
    env["PARETONAS_DATA_DIR"] = str(tmp_path / "data")
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--migrate", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(log_path.read_text())
                time.sleep(0.2)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert ready.status_code == 200
        assert (ready.json()["status"], ready.json()["revision"]) == ("degraded", head_revision())
    finally:
        process.terminate()
        code = process.wait(timeout=30)
    # uvicorn shuts down cleanly on SIGTERM; serve then stops its workers and exits 128 + SIGTERM.
    assert code == 128 + signal.SIGTERM
    assert "Application shutdown complete" in log_path.read_text()
    assert (tmp_path / "data" / "service.db").is_file()


def test_serve_stops_workers_term_then_kill() -> None:
    """--workers: a worker that exits on SIGTERM is left to exit; one that ignores it is killed."""
    from service.commands.serve import _stop

    ignores = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", f"{prefix}print('up', flush=True); time.sleep(60)"],
            stdout=subprocess.PIPE,
        )
        for prefix in ("import time; ", ignores)
    ]
    for process in processes:  # both are running (and the second has its handler) before _stop
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
    _stop(processes, grace=1.0)
    assert [process.returncode for process in processes] == [-signal.SIGTERM, -signal.SIGKILL]
    for process in processes:
        assert process.stdout is not None
        process.stdout.close()
