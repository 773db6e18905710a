"""A real local Ray head for the tests (no tests here): started once, stopped, nothing left behind.

``RayHead.start`` runs ``ray start --head --block`` in a session of its own (``setsid``), on free
ports and a temporary directory, with the dashboard (Ray's state API lives there) on 127.0.0.1.
Every process Ray starts (GCS, raylet, dashboard, agents, worker processes) inherits that session,
so ``stop`` ends exactly those: SIGTERM to ``ray start`` (it drains and stops its processes), then
SIGKILL to whatever of the session is left, and ``leftovers`` lists any survivor.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.service.test_worker_support import free_port

RAY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ray"


@dataclass
class RayHead:
    """A running head: its GCS address, dashboard URL, process and temporary directory."""

    process: subprocess.Popen[bytes]
    address: str
    dashboard_url: str
    temp_dir: Path
    log_path: Path

    @classmethod
    def start(cls, *, num_cpus: int = 2, num_gpus: int = 0, timeout: float = 120) -> RayHead:
        """Start a head with ``num_cpus`` CPUs and ``num_gpus`` GPUs; wait until it accepts
        drivers."""
        temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: socket paths
        log_path = temp_dir / "head.log"
        port, dashboard = free_port(), free_port()
        ports = {
            "--port": port,
            "--dashboard-port": dashboard,
            "--ray-client-server-port": free_port(),
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
        }
        command = [
            str(RAY if RAY.exists() else shutil.which("ray") or "ray"),
            "start",
            "--head",
            "--block",
            f"--num-cpus={num_cpus}",
            f"--num-gpus={num_gpus}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--temp-dir={temp_dir}",
            "--object-store-memory=200000000",
            "--disable-usage-stats",
            *(f"{flag}={value}" for flag, value in ports.items()),
        ]
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        head = cls(
            process=process,
            address="",
            dashboard_url=f"http://127.0.0.1:{dashboard}",
            temp_dir=temp_dir,
            log_path=log_path,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"ray start --address='([^']+)'", head.log())
            if found and "block forever" in head.log():
                head.address = found[1]
                return head
            if process.poll() is not None:
                break
            time.sleep(0.2)
        head.stop()
        raise RuntimeError(f"the Ray head did not start; log:\n{head.log()}")

    def log(self) -> str:
        """What ``ray start`` printed."""
        return self.log_path.read_text(errors="replace")

    def session_pids(self) -> list[int]:
        """Live processes of the head's session (Ray's processes, worker processes included)."""
        sid = self.process.pid
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                if os.getsid(pid) == sid and _alive(pid):
                    pids.append(pid)
            except (ProcessLookupError, PermissionError):
                continue
        return pids

    def stop(self, *, timeout: float = 40) -> None:
        """SIGTERM ``ray start`` (it stops its processes), then SIGKILL any survivor of the
        session; removes the temporary directory."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        deadline = time.monotonic() + 10
        while (pids := self.session_pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def running_trial_tasks(self) -> list[Any]:
        """Ray's state API: the RUNNING tasks of trials, each with its ``worker_pid``."""
        from ray.util.state import list_tasks

        tasks = list_tasks(
            address=self.dashboard_url,
            filters=[("state", "=", "RUNNING")],
            raise_on_missing_output=False,
        )
        return [task for task in tasks if task.name.startswith("paretonas-trial")]


def _alive(pid: int) -> bool:
    """False for a zombie (exited, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


__all__ = ["RayHead"]
