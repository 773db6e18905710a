"""A cancel reaches a running trial at its next epoch end; a trial out of wall time fails for good.

In-process: ``Heartbeat.keep_going()`` (what the trainer calls after every epoch) reads the job
itself, so the first epoch that ends after a cancel stops, whatever the heartbeat interval. Real
processes (SQLite and PostgreSQL): a cancel with a heartbeat of ten minutes still stops the trial,
and ``PARETONAS_TRIAL_MAX_SECONDS`` fails trials without retrying them.
"""

from __future__ import annotations

import re
import signal
import time

from sqlalchemy import update

from service.db.tables import Job
from service.worker.context import WorkerContext
from service.worker.database import worker_engine
from service.worker.lease import Heartbeat
from service.worker.recovery import TIMED_OUT
from tests.service import test_worker_support as support
from tests.service.test_worker_support import ServiceDB, create_job, wait_until

service_db = support.service_db  # the fixture: SQLite and PostgreSQL

SLOW_HEARTBEAT = {"PARETONAS_HEARTBEAT_SECONDS": "600", "PARETONAS_LEASE_SECONDS": "1200",
                  "PARETONAS_WORKER_STALE_SECONDS": "1800"}


def _context(
    db: ServiceDB, *, trial_max_seconds: float | None = None, cancel_check_seconds: float = 0.0
) -> WorkerContext:
    return WorkerContext(
        engine=worker_engine(db.url),
        worker_id="w1",
        optuna_storage=db.optuna_url,
        lease_seconds=1200,
        heartbeat_seconds=600,
        max_trial_retries=1,
        trial_max_seconds=trial_max_seconds,
        cancel_check_seconds=cancel_check_seconds,
    )


def test_keep_going_reads_the_cancel_and_the_job_status_itself(service_db: ServiceDB) -> None:
    ctx = _context(service_db)
    for ending in ("cancel", "fail"):
        job_id = create_job(service_db, n_trials=2)
        heartbeat = Heartbeat(ctx, trial_id=1, job_id=job_id, number=0)  # thread never started
        assert heartbeat.keep_going() and heartbeat.keep_going()
        if ending == "cancel":
            service_db.cancel(job_id)
        else:
            with service_db.engine.begin() as connection:
                connection.execute(update(Job).where(Job.id == job_id).values(status="failed"))
        assert heartbeat.keep_going() is False  # the very next epoch end
        assert heartbeat.cancelled.is_set() and not heartbeat.timed_out.is_set()
    ctx.engine.dispose()


def test_keep_going_reads_the_job_at_most_every_cancel_check_seconds(
    service_db: ServiceDB,
) -> None:
    ctx = _context(service_db, cancel_check_seconds=0.5)
    job_id = create_job(service_db, n_trials=2)
    heartbeat = Heartbeat(ctx, trial_id=1, job_id=job_id, number=0)
    assert heartbeat.keep_going()  # read now
    service_db.cancel(job_id)
    assert heartbeat.keep_going()  # a very short epoch later: not read again yet
    time.sleep(0.55)
    assert heartbeat.keep_going() is False
    ctx.engine.dispose()


def test_keep_going_stops_a_trial_past_its_wall_time(service_db: ServiceDB) -> None:
    ctx = _context(service_db, trial_max_seconds=0.3)
    heartbeat = Heartbeat(ctx, trial_id=1, job_id=create_job(service_db, n_trials=1), number=0)
    assert heartbeat.keep_going()
    time.sleep(0.35)
    assert heartbeat.keep_going() is False
    assert heartbeat.timed_out.is_set() and not heartbeat.cancelled.is_set()
    ctx.engine.dispose()


def test_cancel_reaches_the_trial_without_waiting_for_a_heartbeat(service_db: ServiceDB) -> None:
    job_id = create_job(service_db, n_trials=3, epochs=5000)
    worker = service_db.start_worker(name="cancelled", **SLOW_HEARTBEAT)
    wait_until(lambda: service_db.trials(job_id), what="a running trial", watch=worker)
    service_db.cancel(job_id)
    wait_until(
        lambda: service_db.job(job_id).status == "cancelled", what="the cancel", watch=worker
    )
    (stopped,) = service_db.trials(job_id)
    assert (stopped.state, stopped.error) == ("stopped", "job cancelled or ended")
    epoch = re.search(rf"job {job_id} trial 0 stopped after epoch (\d+)/5000", worker.log())
    assert epoch is not None and int(epoch[1]) < 5000, worker.log()
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_trials_past_the_wall_time_limit_fail_and_are_not_retried(service_db: ServiceDB) -> None:
    job_id = create_job(service_db, n_trials=3, epochs=100_000)
    worker = service_db.start_worker(
        name="limited", PARETONAS_TRIAL_MAX_SECONDS="0.5", PARETONAS_MAX_TRIAL_RETRIES="1"
    )
    wait_until(lambda: service_db.job(job_id).status == "failed", what="the job", watch=worker)
    trials = service_db.trials(job_id)
    assert [(t.number, t.state, t.retry_of) for t in trials] == [(0, "failed", None),
                                                                 (1, "failed", None)]
    for trial in trials:
        assert re.fullmatch(
            rf"{TIMED_OUT} of 0.5 s \(PARETONAS_TRIAL_MAX_SECONDS\): stopped after \d+\.\d s at "
            r"epoch \d+/100000; not retried",
            trial.error,
        ), trial.error
    job = service_db.job(job_id)
    assert (job.n_complete, job.n_failed, job.n_running) == (0, 2, 0)
    assert job.error == (
        f"2 trials {TIMED_OUT} (more than max_trial_retries=1); give the trials a smaller budget "
        "(train.epochs, batch size, space) or raise PARETONAS_TRIAL_MAX_SECONDS, then submit the "
        "search again"
    )
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
