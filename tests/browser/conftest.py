"""ONE real ``paretonas serve`` (a free port, one embedded worker) and ONE headless Chromium for
the whole browser test run.

- ``served``: a fresh SQLite data dir, keys of two owners (alice, bob), the server started as a
  real process, and a small digits search of alice's run to the end by the real worker; bob's
  job is submitted and cancelled. Stopped (its process group) at the end of the session.
- ``browser``: Debian's /usr/bin/chromium driven by Playwright (never a downloaded browser).
  Without it the tests skip, except under CI=true, where that is a failure.
- ``page``: a fresh browser context (own cookies); ``alice``: one signed-in page for the whole
  run. Both refuse every request that leaves the server: the dashboard must work offline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.db.engine import make_engine, write_session
from service.db.migrations import upgrade
from service.keys import create_key

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("PARETONAS_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "artifacts"
ENDED = ("succeeded", "failed", "cancelled")


@dataclass
class Served:
    """The running service: its URL, two owners' keys, alice's finished job, bob's job."""

    base: str
    alice: str
    bob: str
    job_id: str
    bob_job_id: str
    log_path: Path
    n_trials: int
    database_url: str = ""
    blocked: list[str] = field(default_factory=list)

    def api(self, path: str, *, key: str | None = None, method: str = "GET", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {key or self.alice}"}
        response = httpx.request(method, self.base + path, headers=headers, timeout=30, **kw)
        response.raise_for_status()
        return response.json() if "json" in response.headers.get("content-type", "") else response

    def wait_job(self, job_id: str, *, key: str | None = None, timeout: float = 240) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.api(f"/api/v1/jobs/{job_id}", key=key)
            if job["status"] in ENDED:
                return job
            time.sleep(0.5)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise AssertionError(f"job {job_id} did not end within {timeout} s; serve log:\n{tail}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keys(database_url: str) -> tuple[str, str]:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with write_session(engine) as session:
            return create_key(session, name="alice").key, create_key(session, name="bob").key
    finally:
        engine.dispose()


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 20  # the worker (same group) exits after the server
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("served")
    # More trials make a fuller screenshot (PARETONAS_DOCS_SCREENSHOT=1 writes docs/'s).
    n_trials = int(os.environ.get("PARETONAS_BROWSER_TRIALS", "4"))
    database_url = f"sqlite:///{data / 'service.db'}"
    alice, bob = _keys(database_url)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETONAS_")}
    env |= {
        "PARETONAS_DATA_DIR": str(data),
        "PARETONAS_WORKER_POLL_SECONDS": "0.3",
        "PARETONAS_HEARTBEAT_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = data / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited {process.returncode}: {log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not answer in 90 s: {log_path.read_text()}")
            time.sleep(0.2)
        body = {
            "dataset": "digits",
            "n_trials": n_trials,
            "seed": 0,
            "parallelism": 1,
            "train": {"epochs": 1, "finetune_epochs": 1},
        }
        served = Served(
            base=base,
            alice=alice,
            bob=bob,
            job_id="",
            bob_job_id="",
            log_path=log_path,
            n_trials=n_trials,
            database_url=database_url,
        )
        served.job_id = served.api("/api/v1/jobs", method="POST", json=body)["id"]
        job = served.wait_job(served.job_id)
        assert job["status"] == "succeeded", job
        bob_job = served.api("/api/v1/jobs", key=bob, method="POST", json=body)
        served.bob_job_id = bob_job["id"]
        served.api(f"/api/v1/jobs/{bob_job['id']}:cancel", key=bob, method="POST")
        served.wait_job(bob_job["id"], key=bob)
        yield served
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: bash scripts/setup.sh installs Debian's chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _context(browser: Any, served: Served) -> Any:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    host = served.base.removeprefix("http://")

    def only_local(route: Any) -> None:
        if route.request.url.split("/")[2] == host:
            route.continue_()
        else:
            served.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    return context


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    """A page in a fresh context: no cookies, nothing cached."""
    context = _context(browser, served)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def alice(browser: Any, served: Served) -> Iterator[Any]:
    """A page signed in as alice, kept for the session (plotly.js is loaded and cached once)."""
    context = _context(browser, served)
    try:
        page = context.new_page()
        sign_in(page, served)
        yield page
    finally:
        context.close()


def sign_in(page: Any, served: Served, key: str | None = None, next_path: str = "/jobs") -> None:
    """Sign in through the form; the page ends on ``next_path``."""
    page.goto(served.base + next_path)
    page.fill("#key", key or served.alice)
    page.click("#signin")
    page.wait_for_url(served.base + next_path)
