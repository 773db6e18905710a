"""Real worker processes, killed and stopped: the job still ends with exactly n_trials trials.

Each test runs on SQLite and on PostgreSQL (``service_db``), with 2-second leases. (A trial out of
retries failing its job is tested in-process, in test_worker_claim.py.)
"""

from __future__ import annotations

import json
import os
import signal

from sqlalchemy import select

from search.pareto import FrontPoint, hypervolume, non_dominated
from service.db.tables import HypervolumeHistory, ParetoMember, TrialWeights
from tests.service import test_worker_support as support
from tests.service.test_worker_support import (
    ServiceDB,
    create_job,
    wait_until,
)

service_db = support.service_db  # the fixture: SQLite and PostgreSQL


def _state_counts(db: ServiceDB, job_id: str) -> dict[str, int]:
    """Trials by state; duplicates (settled without training, issue 16) are left out."""
    counts: dict[str, int] = {}
    for row in db.trials(job_id):
        if row.state != "duplicate":
            counts[row.state] = counts.get(row.state, 0) + 1
    return counts


def _running(db: ServiceDB, job_id: str) -> list[object]:
    return [row for row in db.trials(job_id) if row.state == "running"]


def _assert_front_matches_trials(db: ServiceDB, job_id: str) -> None:
    """The stored members equal the front recomputed from every complete trial; same hypervolume."""
    complete = [row for row in db.trials(job_id) if row.state == "complete" and row.feasible]
    recomputed = non_dominated(
        [FrontPoint(number=r.number, accuracy=r.val_accuracy, params=r.params) for r in complete]
    )
    with db.engine.connect() as connection:
        members = connection.execute(
            select(ParetoMember.trial_number).where(ParetoMember.job_id == job_id)
        ).scalars()
        weights = connection.execute(
            select(TrialWeights.trial_number).where(TrialWeights.job_id == job_id)
        ).scalars()
        history = connection.execute(
            select(HypervolumeHistory.n_complete, HypervolumeHistory.hypervolume)
            .where(HypervolumeHistory.job_id == job_id)
            .order_by(HypervolumeHistory.n_complete)
        ).all()
        member_numbers, weight_numbers = sorted(members), sorted(weights)
    assert member_numbers == sorted(p.number for p in recomputed)
    assert weight_numbers == member_numbers
    job = db.job(job_id)
    expected = hypervolume(recomputed, json.loads(job.reference_point_json))
    assert job.front_size == len(recomputed)
    assert job.hypervolume == expected
    assert [n for n, _ in history] == list(range(1, job.n_trials + 1))
    assert history[-1][1] == expected


def test_sigkill_mid_trial_loses_nothing(service_db: ServiceDB) -> None:
    job_id = create_job(service_db, n_trials=3, epochs=25)
    doomed = service_db.start_worker(name="doomed")
    row = wait_until(lambda: _running(service_db, job_id), what="a running trial", watch=doomed)
    # a worker trains below the CPU priority of the API (PARETONAS_WORKER_NICE, default 10)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, doomed.process.pid) == min(19, ours + 10)
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    survivor = service_db.start_worker(name="survivor")
    wait_until(
        lambda: service_db.job(job_id).status == "succeeded",
        what="the job to succeed",
        watch=survivor,
    )
    trials = service_db.trials(job_id)
    assert _state_counts(service_db, job_id) == {"complete": 3, "failed": 1}
    failed = next(t for t in trials if t.state == "failed")
    retried = next(t for t in trials if t.retry_of is not None)
    assert failed.number == row[0].number
    assert failed.error.startswith("lease expired: worker ")
    assert (retried.retry_of, retried.attempt, retried.state) == (failed.number, 1, "complete")
    assert json.loads(retried.params_json) == json.loads(failed.params_json)
    job = service_db.job(job_id)
    assert (job.n_complete, job.n_failed, job.n_running) == (3, 1, 0)
    _assert_front_matches_trials(service_db, job_id)


def test_sigterm_releases_the_trial_and_exits_zero(service_db: ServiceDB) -> None:
    job_id = create_job(service_db, n_trials=2, epochs=25)
    worker = service_db.start_worker(name="terminated")
    wait_until(lambda: _running(service_db, job_id), what="a running trial", watch=worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()
    (released,) = service_db.trials(job_id)
    assert released.state == "failed"
    assert released.error == f"released by worker {released.worker_id} on shutdown"
    once = service_db.start_worker("--once", name="once")
    assert once.wait() == 0, once.log()
    released_again, retried = service_db.trials(job_id)
    assert released_again == released
    assert (retried.retry_of, retried.attempt, retried.state) == (released.number, 1, "complete")
    assert json.loads(retried.params_json) == json.loads(released.params_json)
    job = service_db.job(job_id)
    assert (job.status, job.n_complete, job.n_failed, job.n_running) == ("running", 1, 1, 0)


def test_two_workers_share_a_job_up_to_its_parallelism(service_db: ServiceDB) -> None:
    workers = [service_db.start_worker(name=f"w{i}") for i in range(2)]
    for worker in workers:  # both poll before the job exists, so both get work
        wait_until(lambda w=worker: "started on cpu" in w.log(), what="start", watch=worker)
    job_id = create_job(service_db, n_trials=4, parallelism=2, epochs=10)
    most_running = 0

    def done() -> bool:
        nonlocal most_running
        most_running = max(most_running, len(_running(service_db, job_id)))
        return bool(service_db.job(job_id).status == "succeeded")

    wait_until(done, what="the job to succeed", watch=workers[0])
    for worker in workers:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    every = service_db.trials(job_id)
    assert [t.number for t in every] == list(range(len(every)))
    trials = [t for t in every if t.state != "duplicate"]  # duplicates are not trained
    assert [t.state for t in trials] == ["complete"] * 4
    assert len({t.worker_id for t in trials}) == 2
    assert most_running <= 2
    _assert_front_matches_trials(service_db, job_id)
