"""Two real `paretonas scheduler` processes race over the same schedules on compressed time
(180x: 36 simulated minutes in 12 s) on SQLite and on PostgreSQL; every due time must become
exactly one run, every started run exactly one job, and both processes must have fired some.

The processes are started once per backend and given the same clock (origin, epoch, speed), so
they read the same simulated time; the schedules are created once both are polling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from service.api.schedule_schemas import ScheduleCreate
from service.api.schedules import create_schedule
from service.db.engine import read_session, write_session
from service.db.tables import ApiKey, Job, Schedule, ScheduleRun
from service.keys import create_key
from service.scheduler.clock import CompressedClock
from service.scheduler.cron import Cron
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
SPEED = 180.0
WINDOW_S = 12.0  # real seconds the schedules are live: 36 simulated minutes
SCHEDULES = [  # (cron, zone, overlap)
    ("* * * * *", "UTC", "queue"),
    ("*/5 * * * *", "UTC", "queue"),
    ("*/10 * * * *", "Europe/Berlin", "queue"),
    ("*/2 * * * *", "UTC", "skip"),
]


def _start(name: str, *, url: str, tmp: Path, epoch: float) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp / f"scheduler-{name}.log"
    env = dict(os.environ, PARETONAS_DATABASE_URL=url, PARETONAS_DATA_DIR=str(tmp),
               PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "scheduler", "--name", name,
             "--poll-seconds", "0.05", "--clock-origin", ORIGIN.isoformat(),
             "--clock-epoch", repr(epoch), "--clock-speed", repr(SPEED)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    return process, log


def _wait_polling(processes: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for process, log in processes:
            if process.poll() is not None:
                pytest.fail(f"scheduler exited {process.returncode}:\n{log.read_text()}")
        if all("polling every" in log.read_text() for _, log in processes):
            return
        time.sleep(0.1)
    pytest.fail("schedulers did not start polling within 120 s")


def _stop(processes: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    for process, _ in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process, log in processes:
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"scheduler ignored SIGTERM for 30 s:\n{log.read_text()}")
        assert code == 0, log.read_text()
        assert "Traceback" not in log.read_text(), log.read_text()


@pytest.mark.slow
def test_two_scheduler_processes_fire_each_due_time_once(
    database_url: str, db_engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    epoch = time.time()
    clock = CompressedClock(origin=ORIGIN, epoch=epoch, speed=SPEED)
    processes = [_start(n, url=database_url, tmp=tmp_path, epoch=epoch) for n in ("a", "b")]
    try:
        _wait_polling(processes)
        with write_session(db_engine) as session:
            owner = session.get(ApiKey, create_key(session, name="cron").id)
        assert owner is not None
        created_at = clock()
        ids = []
        for cron, zone, overlap in SCHEDULES:
            body = ScheduleCreate.model_validate({
                "name": cron, "cron": cron, "timezone": zone, "overlap": overlap,
                "job": {"dataset": "digits", "n_trials": 2},
            })
            schedule, _ = create_schedule(db_engine, body=body, owner=owner, settings=settings,
                                          idempotency_key=None, now=created_at)
            ids.append(schedule.id)
        time.sleep(WINDOW_S)
    finally:
        _stop(processes)

    with read_session(db_engine) as session:
        total_jobs = session.scalar(select(func.count()).select_from(Job))
        runs = list(session.scalars(select(ScheduleRun).order_by(ScheduleRun.due_at)))
        rows = session.execute(select(Schedule.id, Schedule.next_due_at))
        next_due = {schedule_id: due for schedule_id, due in rows}
    started = [run for run in runs if run.status == "started"]
    assert total_jobs == len(started) == len({run.job_id for run in started})
    for schedule_id, (cron_text, zone, overlap) in zip(ids, SCHEDULES, strict=True):
        cron = Cron.parse(cron_text, zone)
        expected = []
        for due in cron.times_after(created_at):
            if due >= next_due[schedule_id]:
                break
            expected.append(due)
        mine = [run for run in runs if run.schedule_id == schedule_id]
        assert [run.due_at for run in mine] == expected, cron_text  # each due time exactly once
        reasons = Counter((run.status, (run.reason or "")[:8]) for run in mine)
        print(cron_text, zone, overlap, dict(reasons))
        assert {run.status for run in mine} <= {"started", "skipped"}
        # A due time both processes were too slow for (a loaded machine) is skipped as missed
        # and the next one is a catch-up: still one run per due time.
        first = next(i for i, run in enumerate(mine) if run.status == "started")
        assert all((r.reason or "").startswith("missed") for r in mine[:first])
        if overlap == "skip":  # nothing runs the jobs: the first stays queued, the rest skip
            assert all(r.status == "skipped" for r in mine[first + 1 :])
        else:
            assert all(r.reason.startswith("missed") for r in mine if r.status == "skipped")
    minutely = [run for run in runs if run.schedule_id == ids[0]]
    assert len(minutely) >= 20, "the window covered fewer than 20 simulated minutes"
    assert {run.fired_by for run in runs} == {"a", "b"}
    print("runs by scheduler:", dict(Counter(run.fired_by for run in runs)), "jobs:", total_jobs)
