"""`paretonas worker --ray`: a real local Ray head, real driver processes, real kills.

One Ray head (2 CPUs, no GPU) serves the whole test session and is stopped at its end, with a check
that none of its processes is left. Jobs are tiny digits searches; leases last 8 seconds.

- (both backends) a Ray worker process killed mid-trial (found by its pid through Ray's state
  API) fails that trial and the service retries it; then the driver is killed with SIGKILL while
  it holds trials: Ray ends its tasks, a plain worker reaps the expired leases, and the job ends
  with exactly 8 complete trials, each lost trial retried once, and the stored front equal to the
  front recomputed from the trials;
- a cancel stops a trial on Ray within an epoch; SIGTERM releases the trials the driver holds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from service.db.tables import Job
from service.db.tables import Worker as WorkerRow
from tests.service import test_worker_support as support
from tests.service.ray_support import RayHead
from tests.service.test_worker_processes import _assert_front_matches_trials, _state_counts
from tests.service.test_worker_support import ROOT, ServiceDB, Worker, create_job, wait_until

# Generous bounds: on the shared 2-core machine a fresh process importing torch and Ray has taken
# 90 s at load 15-20; unloaded, each test takes well under a minute.
pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(900)]
WAIT_S = 400

service_db = support.service_db  # the fixture: SQLite and PostgreSQL

# Longer than the plain worker tests' 2 s: the driver renews leases from threads of a process
# that also waits on Ray, and on this shared 2-core machine a process may stall for seconds.
RAY_LEASES = {"PARETONAS_LEASE_SECONDS": "8", "PARETONAS_HEARTBEAT_SECONDS": "1"}


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """One local Ray head for the session; afterwards none of its processes may remain."""
    try:
        import ray  # noqa: F401
    except ImportError:
        message = "ray is not installed: pip install -e '.[ray]'"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the Ray tests must run)")
        pytest.skip(message)
    head = RayHead.start(num_cpus=2)
    try:
        yield head
    finally:
        head.stop()
        left = head.session_pids()
        assert left == [], f"Ray processes left after stopping the head: {left}"


def _start_driver(db: ServiceDB, head: RayHead, *, name: str = "driver") -> Worker:
    log_path = db.tmp / f"{name}-{len(db.processes)}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--ray", head.address],
            cwd=ROOT,
            env=db.env(**RAY_LEASES),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    db.processes.append(process)
    return Worker(process=process, log_path=log_path)


def _ray_job(db: ServiceDB, *, n_trials: int, parallelism: int, epochs: int) -> str:
    job_id = create_job(db, n_trials=n_trials, parallelism=parallelism, epochs=epochs)
    with db.engine.begin() as connection:
        connection.execute(
            update(Job).where(Job.id == job_id).values(cpus_per_trial=1.0, gpus_per_trial=0.0)
        )
    return job_id


def _running_numbers(db: ServiceDB, job_id: str) -> set[int]:
    return {row.number for row in db.trials(job_id) if row.state == "running"}


def _trial_number(task: Any) -> int:
    found = re.search(r"#(\d+)$", task.name)
    assert found is not None, task.name
    return int(found[1])


def _assert_each_failed_trial_retried_once(db: ServiceDB, job_id: str) -> None:
    trials = db.trials(job_id)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    by_number = {t.number: t for t in trials}
    retries = [t for t in trials if t.retry_of is not None]
    failed = sorted(t.number for t in trials if t.state == "failed")
    assert sorted(t.retry_of for t in retries) == failed
    for retry in retries:
        lost = by_number[retry.retry_of]
        assert (retry.attempt, retry.state) == (lost.attempt + 1, "complete")
        assert json.loads(retry.params_json) == json.loads(lost.params_json)


def test_a_killed_ray_worker_is_retried_and_a_killed_driver_loses_nothing(
    service_db: ServiceDB, ray_head: RayHead
) -> None:
    job_id = _ray_job(service_db, n_trials=8, parallelism=2, epochs=20)
    driver = _start_driver(service_db, ray_head)

    def a_running_task() -> Any:
        running = _running_numbers(service_db, job_id)
        tasks = [t for t in ray_head.running_trial_tasks() if _trial_number(t) in running]
        return tasks[0] if tasks else None

    # 1. A Ray worker process dies mid-trial: that trial fails and the service retries it.
    task = wait_until(a_running_task, what="a trial running on Ray", watch=driver, timeout=WAIT_S)
    victim = _trial_number(task)
    os.kill(task.worker_pid, signal.SIGKILL)
    wait_until(
        lambda: service_db.job(job_id).n_complete >= 4 and _running_numbers(service_db, job_id),
        what="four complete trials and a running one",
        watch=driver,
        timeout=WAIT_S,
    )
    trials = {t.number: t for t in service_db.trials(job_id)}
    assert trials[victim].state == "failed"
    assert trials[victim].error.startswith("ray worker died mid-trial"), trials[victim].error
    assert "placed on Ray: 1 CPUs, 0 GPUs" in driver.log()
    # 2. The driver dies (SIGKILL) holding trials: Ray ends its tasks, a plain worker finishes.
    driver.signal(signal.SIGKILL)
    driver.wait()
    held = _running_numbers(service_db, job_id)
    wait_until(lambda: not ray_head.running_trial_tasks(), what="Ray to end the tasks", timeout=120)
    plain = service_db.start_worker(name="plain", **RAY_LEASES)
    wait_until(
        lambda: service_db.job(job_id).status == "succeeded",
        what="the job to succeed",
        watch=plain,
        timeout=WAIT_S,
    )
    trials = {t.number: t for t in service_db.trials(job_id)}
    failed = sorted(n for n, t in trials.items() if t.state == "failed")
    assert failed == sorted({victim} | held)
    assert all(trials[n].error.startswith("lease expired: worker ") for n in held)
    assert _state_counts(service_db, job_id) == {"complete": 8, "failed": len(failed)}
    _assert_each_failed_trial_retried_once(service_db, job_id)
    job = service_db.job(job_id)
    assert (job.n_complete, job.n_failed, job.n_running) == (8, len(failed), 0)
    _assert_front_matches_trials(service_db, job_id)
    plain.signal(signal.SIGTERM)
    assert plain.wait() == 0


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_cancel_stops_a_ray_trial_and_sigterm_releases_the_held_ones(
    service_db: ServiceDB, ray_head: RayHead
) -> None:
    cancelled = _ray_job(service_db, n_trials=2, parallelism=1, epochs=5000)
    held = _ray_job(service_db, n_trials=3, parallelism=1, epochs=5000)
    driver = _start_driver(service_db, ray_head)

    def both_train() -> bool:
        in_db = _running_numbers(service_db, cancelled) and _running_numbers(service_db, held)
        return bool(in_db) and len(ray_head.running_trial_tasks()) == 2

    wait_until(both_train, what="both jobs' trials training on Ray", watch=driver, timeout=WAIT_S)
    # the driver is the only worker process: its presence row is what /readyz reads (it names
    # a trial in flight from its next beat on)
    row = wait_until(
        lambda: next((r for r in _worker_rows(service_db) if r.job_id in (cancelled, held)), None),
        what="the driver's presence row naming a trial",
        watch=driver,
        timeout=WAIT_S,
    )
    assert (row.device, row.stopped_at, len(_worker_rows(service_db))) == ("ray", None, 1)
    service_db.cancel(cancelled)
    wait_until(
        lambda: service_db.job(cancelled).status == "cancelled",
        what="the cancel",
        watch=driver,
        timeout=WAIT_S,
    )
    (stopped,) = service_db.trials(cancelled)
    assert (stopped.state, stopped.error) == ("stopped", "job cancelled or ended")
    epoch = re.search(rf"job {cancelled} trial 0 stopped after epoch (\d+)/5000", driver.log())
    assert epoch is not None and int(epoch[1]) < 5000, driver.log()
    driver.signal(signal.SIGTERM)
    assert driver.wait(timeout=WAIT_S) == 0, driver.log()
    (row,) = _worker_rows(service_db)
    assert row.stopped_at is not None and row.job_id is None
    (released,) = service_db.trials(held)
    assert released.state == "failed"
    assert released.error == f"released by worker {released.worker_id} on shutdown"
    # "after epoch 0" when SIGTERM came before its first epoch ended, else "after epoch N/5000"
    assert re.search(rf"job {held} trial 0 released after epoch (0|\d+/5000)$", driver.log(),
                     re.MULTILINE), driver.log()
    job = service_db.job(held)
    assert (job.status, job.n_running, job.n_failed, job.n_complete) == ("running", 0, 1, 0)


def _worker_rows(service_db: ServiceDB) -> list[Any]:
    with service_db.engine.connect() as connection:
        return list(connection.execute(select(WorkerRow)).all())
