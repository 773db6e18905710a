"""`paretonas demo --exit-when-done` as a real process: API + worker on SQLite, one whole search."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, select

from search.pareto import FrontPoint, non_dominated
from service.db.tables import ApiKey, Job, ParetoMember, Trial
from tests.service.test_worker_support import ROOT, free_port


def test_demo_runs_a_search_to_the_end_and_prints_its_front(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETONAS_")}
    env.update(PARETONAS_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "demo",
            "--port",
            str(port),
            "--n-trials",
            "3",
            "--epochs",
            "1",
            "--exit-when-done",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    log = (tmp_path / "demo-serve.log").read_text()
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log}"
    out = done.stdout
    key = re.search(r"^API key +(pnas_\S+)", out, re.M)
    job_id = re.search(r"^submitted +(job_\w+):", out, re.M)
    assert key is not None and job_id is not None, out
    assert f"API docs     http://127.0.0.1:{port}/docs" in out
    assert f"dashboard    http://127.0.0.1:{port}/jobs/{job_id[1]}\n" in out
    assert "sign in there with the API key above" in out
    assert f"Bearer {key[1]}' http://127.0.0.1:{port}/api/v1/jobs/{job_id[1]}/pareto" in out
    assert re.search(r"^succeeded +trials 3/3 complete, 0 running, 0 failed", out, re.M), out
    printed = [
        int(n) for n in re.findall(r"^ +(\d+) +0\.\d{4} ", out.split("Pareto front")[1], re.M)
    ]

    engine = create_engine(f"sqlite:///{tmp_path / 'service.db'}")
    with engine.connect() as connection:
        job = connection.execute(select(Job).where(Job.id == job_id[1])).one()
        trials = connection.execute(select(Trial).where(Trial.job_id == job.id)).all()
        members = (
            connection.execute(
                select(ParetoMember.trial_number)
                .where(ParetoMember.job_id == job.id)
                .order_by(ParetoMember.params, ParetoMember.trial_number)
            )
            .scalars()
            .all()
        )
        key_hashes = connection.execute(select(ApiKey.key_hash)).scalars().all()
    engine.dispose()
    assert key_hashes == [hashlib.sha256(key[1].encode()).hexdigest()]
    complete = [t for t in trials if t.state == "complete"]
    assert (job.status, job.n_complete, len(complete)) == ("succeeded", 3, 3)
    assert {t.state for t in trials} <= {"complete", "duplicate"}  # duplicates are not trained
    assert job.n_skipped == len(trials) - 3
    front = non_dominated(
        FrontPoint(number=t.number, accuracy=t.val_accuracy, params=t.params) for t in complete
    )
    assert sorted(members) == sorted(p.number for p in front)
    assert printed == list(members)
    assert _processes_with(f"PARETONAS_DATA_DIR={tmp_path}") == []  # the worker stopped too
    with socket.socket() as sock:  # the API stopped with the demo: nothing listens on its port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_sigterm_while_serving_stops_the_server_and_its_worker(tmp_path: Path) -> None:
    """A demo killed with SIGTERM (not Ctrl-C) after its search still stops what it started."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETONAS_")}
    env.update(PARETONAS_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    demo = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "demo", "--port", str(port), "--n-trials", "1",
         "--epochs", "1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:  # until it says it keeps serving
            lines.append(line)
            if line.startswith("still serving"):
                break
        assert lines and lines[-1].startswith("still serving"), "".join(lines)
        assert len(_processes_with(f"PARETONAS_DATA_DIR={tmp_path}")) >= 3  # demo, API, worker
        demo.terminate()
        rest = demo.communicate(timeout=90)[0]
    finally:
        if demo.poll() is None:
            demo.kill()
    assert "stopping (the worker releases its trial)" in rest, rest
    assert _processes_with(f"PARETONAS_DATA_DIR={tmp_path}") == []
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def _processes_with(variable: str) -> list[int]:
    """Pids of live processes whose environment holds ``variable`` (NAME=value)."""
    needle = variable.encode() + b"\0"
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes() + b"\0":
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found
