"""`paretonas export --job`: a model downloaded from a real server (uvicorn on a free port, in
a thread of the test process), with the URL and key from options or the environment."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from service.api import create_app
from service.cli import app
from service.db.engine import write_session
from service.db.tables import ParetoMember, Trial, TrialWeights
from service.settings import Settings

WEIGHTS = b"stored safetensors bytes"  # served as they are for format=safetensors


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="error",
                            lifespan="on")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    port = instance.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def job_id(client: TestClient, auth: dict[str, str], db_engine: Engine) -> str:
    job = str(client.post("/api/v1/jobs", json={"dataset": "digits", "n_trials": 2},
                          headers=auth).json()["id"])
    with write_session(db_engine) as session:
        for number in (0, 1):
            session.execute(insert(Trial).values(
                job_id=job, number=number, state="complete", params_json="{}",
                spec_json=json.dumps({"n": number}), val_accuracy=0.9 - number, params=10))
        session.execute(insert(ParetoMember).values(
            job_id=job, trial_number=0, val_accuracy=0.9, params=10, spec_json="{}"))
        session.execute(insert(TrialWeights).values(job_id=job, trial_number=0, data=WEIGHTS))
    return job


def test_export_downloads_from_the_service(
    server: str, job_id: str, auth: dict[str, str], tmp_path: Path,
    make_key: Callable[[str], str],
) -> None:
    key = auth["Authorization"].removeprefix("Bearer ")
    out = tmp_path / "sub" / "model.safetensors"
    runner = CliRunner()
    result = runner.invoke(app, ["export", "--job", job_id, "--trial", "0", "--out", str(out)],
                           env={"PARETONAS_URL": server, "PARETONAS_API_KEY": key})
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == WEIGHTS
    assert result.stderr.strip() == f"wrote {out} ({len(WEIGHTS)} bytes, safetensors)"
    # Options beat the environment; a trial off the front names why, a foreign key gets 404.
    result = runner.invoke(app, ["export", "--job", job_id, "--trial", "1", "--out", str(out),
                                 "--url", server, "--key", key],
                           env={"PARETONAS_URL": "http://127.0.0.1:9", "PARETONAS_API_KEY": "x"})
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {server}: 404 trial 1 of job {job_id} is not on the Pareto front (another "
        f"trial dominates it), so its weights were not kept; front members are listed by GET "
        f"/api/v1/jobs/{job_id}/pareto")
    result = runner.invoke(app, ["export", "--job", job_id, "--trial", "0", "--out", str(out),
                                 "--url", server, "--key", make_key("mallory")])
    assert result.exit_code == 1 and ": 404 " in result.stderr
    result = runner.invoke(app, ["export", "--job", job_id, "--trial", "0", "--out", str(out),
                                 "--url", server, "--format", "pt", "--key", key])
    assert (result.exit_code, result.stderr.strip()) == (
        2, "error: --format: got 'pt'; allowed: safetensors, onnx")


def test_export_names_a_missing_key_and_an_unreachable_service(tmp_path: Path) -> None:
    runner = CliRunner()
    out = str(tmp_path / "m.onnx")
    result = runner.invoke(app, ["export", "--job", "job_x", "--trial", "0", "--out", out],
                           env={"PARETONAS_API_KEY": ""})
    assert (result.exit_code, result.stderr.strip()) == (
        1, "error: no API key: give --key or set PARETONAS_API_KEY (paretonas keys create)")
    result = runner.invoke(app, ["export", "--job", "job_x", "--trial", "0", "--out", out,
                                 "--url", "http://127.0.0.1:9", "--key", "k"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach the service at http://127.0.0.1:9 (")
    result = runner.invoke(app, ["export", "--trial", "0", "--out", out])
    assert (result.exit_code, result.stderr.strip()) == (
        2, "error: give exactly one of --job (a job on the service) and --run (a paretonas "
        "search --out folder)")
