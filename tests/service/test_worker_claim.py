"""Claiming, retrying and recording in-process (no training): the rules, on both backends."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update

from search.engine import TrialOutcome
from search.pareto import FrontPoint, hypervolume, non_dominated
from service.db.tables import HypervolumeHistory, Job, ParetoMember, Trial, TrialWeights
from service.worker import claim as claim_module
from service.worker import loop as loop_module
from service.worker.backoff import Backoff, StopRequested, is_transient, retry_transient
from service.worker.claim import Claim, claim_next
from service.worker.context import WorkerContext
from service.worker.database import utcnow, worker_engine, write_transaction
from service.worker.loop import Worker, WorkerOptions
from service.worker.reasons import RELEASED, TIMED_OUT
from service.worker.record import LeaseLost, record_complete
from service.worker.recovery import (
    LostTrial,
    fail_and_retry,
    lock_job,
    reap_expired,
    settle_cancelled,
)
from tests.service import test_worker_support as support
from tests.service.test_worker_support import (
    ServiceDB,
    create_job,
)

service_db = support.service_db  # the fixture: SQLite and PostgreSQL


def _context(db: ServiceDB, *, max_trial_retries: int = 2, worker_id: str = "w1") -> WorkerContext:
    return WorkerContext(
        engine=worker_engine(db.url),
        worker_id=worker_id,
        optuna_storage=db.optuna_url,
        lease_seconds=30,
        heartbeat_seconds=5,
        max_trial_retries=max_trial_retries,
    )


def _claim(ctx: WorkerContext) -> Claim:
    claim = claim_next(ctx)
    assert claim is not None
    return claim


def _lose(ctx: WorkerContext, claim: Claim, *, always_retry: bool = False,
          never_retry: bool = False, reason: str = "lease expired: test") -> None:
    lost = LostTrial(
        trial_id=claim.trial_id,
        job_id=claim.job.job_id,
        number=claim.number,
        attempt=claim.attempt,
        reason=reason,
    )
    with write_transaction(ctx.engine) as connection:
        lock_job(connection, job_id=lost.job_id)
        assert fail_and_retry(connection, ctx=ctx, ref=claim.job.ref, trial=lost,
                              always_retry=always_retry, never_retry=never_retry)


def _outcome(claim: Claim, *, accuracy: float, params: int) -> TrialOutcome:
    return TrialOutcome(
        number=claim.number,
        state="complete",
        values=(accuracy, float(params)),
        val_accuracy=accuracy,
        test_accuracy=accuracy / 2,
        params=params,
        macs=params * 3,
        feasible=True,
        train_seconds=0.5,
        spec_json=claim.ticket.spec_json,
        weights=f"weights-{claim.number}".encode(),
    )


def test_claims_stop_at_parallelism_and_at_n_trials(service_db: ServiceDB) -> None:
    ctx = _context(service_db)
    narrow = create_job(service_db, n_trials=3, parallelism=1)
    first = _claim(ctx)
    assert (first.job.job_id, first.number, first.attempt, first.retry_of) == (narrow, 0, 0, None)
    assert claim_next(ctx) is None  # parallelism 1 is taken
    job = service_db.job(narrow)
    assert (job.status, job.n_running, job.started_at is not None) == ("running", 1, True)
    record_complete(ctx, claim=first, outcome=_outcome(first, accuracy=0.5, params=100))
    second = _claim(ctx)
    record_complete(ctx, claim=second, outcome=_outcome(second, accuracy=0.6, params=200))
    third = _claim(ctx)
    assert claim_next(ctx) is None  # n_trials reached: 2 complete + 1 running
    recorded = record_complete(ctx, claim=third, outcome=_outcome(third, accuracy=0.7, params=300))
    assert (recorded.n_complete, recorded.job_status) == (3, "succeeded")
    assert claim_next(ctx) is None
    ctx.engine.dispose()


def test_cancelled_job_is_not_claimed(service_db: ServiceDB) -> None:
    ctx = _context(service_db)
    job_id = create_job(service_db, n_trials=2, parallelism=2)
    service_db.cancel(job_id)
    assert claim_next(ctx) is None
    assert service_db.job(job_id).status == "queued"
    ctx.engine.dispose()


def test_lost_trial_is_retried_with_its_parameters_then_fails_the_job(
    service_db: ServiceDB,
) -> None:
    ctx = _context(service_db, max_trial_retries=1)
    job_id = create_job(service_db, n_trials=2, parallelism=2)
    first = _claim(ctx)
    _lose(ctx, first)
    retry = _claim(ctx)
    assert (retry.retry_of, retry.attempt) == (first.number, 1)
    assert retry.ticket.params == first.ticket.params
    fresh = _claim(ctx)
    assert (fresh.retry_of, fresh.attempt) == (None, 0)
    _lose(ctx, retry)
    job = service_db.job(job_id)
    assert (job.status, job.n_failed, job.n_running) == ("failed", 2, 1)
    assert job.error.startswith(
        f"trial {first.number} failed on all 2 attempts (as trial numbers "
        f"{first.number}, {retry.number}; max_trial_retries=1)"
    )
    assert claim_next(ctx) is None
    ctx.engine.dispose()


def test_releases_on_shutdown_do_not_use_up_the_retries(service_db: ServiceDB) -> None:
    """Three deploys (each releases the trial) then one real crash: with max_trial_retries=1
    the crash is still retried; a second crash fails the job."""
    ctx = _context(service_db, max_trial_retries=1)
    job_id = create_job(service_db, n_trials=1)
    claim = _claim(ctx)
    for _ in range(3):
        _lose(ctx, claim, always_retry=True, reason=f"{RELEASED} w1 on shutdown")
        claim = _claim(ctx)
    _lose(ctx, claim)  # the trial's own fault: 1 of the 1 retry allowed
    claim = _claim(ctx)
    assert (claim.attempt, service_db.job(job_id).status) == (4, "running")
    _lose(ctx, claim)
    job = service_db.job(job_id)
    assert job.status == "failed"
    assert job.error.startswith("trial 0 failed on all 5 attempts (as trial numbers 0, 1, 2, 3, 4; "
                                "3 released on shutdown; max_trial_retries=1); last error: ")
    ctx.engine.dispose()


def test_a_retry_reopens_a_job_whose_space_was_used_up_while_it_ran(
    service_db: ServiceDB,
) -> None:
    """The space ran out (finished_reason set) while the last trial ran, then that trial was
    lost: its retry must be claimable, or the job stays running with nothing running."""
    ctx = _context(service_db)
    job_id = create_job(service_db, n_trials=3, parallelism=2)
    first = _claim(ctx)
    _used_up(service_db, job_id)
    assert claim_next(ctx) is None  # a used-up job takes no new claims
    _lose(ctx, first)
    assert service_db.job(job_id).finished_reason is None
    retry = _claim(ctx)
    assert retry.retry_of == first.number
    ctx.engine.dispose()


def test_a_used_up_job_whose_last_trial_fails_for_good_succeeds(service_db: ServiceDB) -> None:
    ctx = _context(service_db, max_trial_retries=2)
    job_id = create_job(service_db, n_trials=3, parallelism=2)
    done = _claim(ctx)
    record_complete(ctx, claim=done, outcome=_outcome(done, accuracy=0.5, params=100))
    last = _claim(ctx)
    _used_up(service_db, job_id)
    _lose(ctx, last, never_retry=True, reason=f"{TIMED_OUT} of 1 s: test")
    job = service_db.job(job_id)
    assert (job.status, job.n_running, job.n_complete, job.n_failed) == ("succeeded", 0, 1, 1)
    ctx.engine.dispose()


def test_a_job_whose_search_cannot_propose_fails_and_the_queue_goes_on(
    service_db: ServiceDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error proposing a trial for the oldest job made every claim raise on that same job:
    the other jobs waited forever. The job fails with the error; the next claim is another's."""
    ctx = _context(service_db)
    broken = create_job(service_db, n_trials=2)
    healthy = create_job(service_db, n_trials=2)
    real = claim_module.search_engine.next_trial

    def next_trial(*, ref: Any, config: Any, owner: str | None = None) -> Any:
        if ref.study_name.endswith(broken):
            raise ValueError("the study's sampler state is corrupt")
        return real(ref=ref, config=config, owner=owner)

    monkeypatch.setattr(claim_module.search_engine, "next_trial", next_trial)
    assert claim_next(ctx) is None
    job = service_db.job(broken)
    assert (job.status, job.error) == (
        "failed", "the search could not propose a trial (ValueError: the study's sampler state "
        "is corrupt)")
    assert _claim(ctx).job.job_id == healthy
    ctx.engine.dispose()


def test_a_lease_lost_while_recording_leaves_the_trial_to_its_retry(
    service_db: ServiceDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease runs out while the worker records a finished trial (the database was away
    longer than the lease): the reaper fails the row and queues a retry, and recording answers
    LeaseLost. The study was told COMPLETE before recording, so the retry was taken for a
    duplicate of it and the architecture never reached the stored front."""
    ctx = _context(service_db)
    job_id = create_job(service_db, n_trials=1)
    first = _claim(ctx)
    real = loop_module.record_complete

    def lease_runs_out_first(ctx: WorkerContext, **kwargs: Any) -> Any:
        with service_db.engine.begin() as connection:
            connection.execute(update(Trial).where(Trial.id == first.trial_id)
                               .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        assert reap_expired(ctx) == 1
        return real(ctx, **kwargs)

    monkeypatch.setattr(loop_module, "record_complete", lease_runs_out_first)
    Worker(ctx, WorkerOptions())._record(
        first, _outcome(first, accuracy=0.9, params=100), epochs=[])
    retry = _claim(ctx)  # trained again, not settled as a duplicate of a failed trial
    assert (retry.retry_of, retry.ticket.skip) == (first.number, None)
    record_complete(ctx, claim=retry, outcome=_outcome(retry, accuracy=0.9, params=100))
    job = service_db.job(job_id)
    assert (job.status, job.n_complete, job.front_size) == ("succeeded", 1, 1)
    ctx.engine.dispose()


def _used_up(db: ServiceDB, job_id: str) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            update(Job).where(Job.id == job_id).values(finished_reason="space used up (test)")
        )


def test_a_released_trial_is_retried_whatever_its_attempt(service_db: ServiceDB) -> None:
    ctx = _context(service_db, max_trial_retries=0)
    job_id = create_job(service_db, n_trials=1)
    first = _claim(ctx)
    _lose(ctx, first, always_retry=True)
    retry = _claim(ctx)
    assert (retry.retry_of, retry.attempt) == (first.number, 1)
    assert service_db.job(job_id).status == "running"
    ctx.engine.dispose()


def test_a_reaped_trial_records_nothing(service_db: ServiceDB) -> None:
    ctx = _context(service_db)
    job_id = create_job(service_db, n_trials=2)
    claim = _claim(ctx)
    _lose(ctx, claim)
    with pytest.raises(LeaseLost, match=f"trial {claim.number} of job {job_id} was reaped"):
        record_complete(ctx, claim=claim, outcome=_outcome(claim, accuracy=0.9, params=10))
    job = service_db.job(job_id)
    assert (job.n_complete, job.n_failed, job.front_size) == (0, 1, 0)
    ctx.engine.dispose()


def test_incremental_front_equals_the_front_of_all_trials(service_db: ServiceDB) -> None:
    ctx = _context(service_db)
    n_trials = 14
    job_id = create_job(service_db, n_trials=n_trials, parallelism=n_trials)
    rng = random.Random(7)
    points: list[FrontPoint] = []
    for _ in range(n_trials):
        claim = _claim(ctx)
        accuracy, params = round(rng.uniform(0.1, 0.99), 2), rng.randrange(50, 5000, 50)
        record_complete(ctx, claim=claim, outcome=_outcome(claim, accuracy=accuracy, params=params))
        points.append(FrontPoint(number=claim.number, accuracy=accuracy, params=params))
        expected = non_dominated(points)
        with service_db.engine.connect() as connection:
            members = sorted(
                connection.execute(
                    select(ParetoMember.trial_number).where(ParetoMember.job_id == job_id)
                ).scalars()
            )
            weights = dict(
                connection.execute(
                    select(TrialWeights.trial_number, TrialWeights.data).where(
                        TrialWeights.job_id == job_id
                    )
                ).all()
            )
        assert members == sorted(p.number for p in expected)
        assert weights == {n: f"weights-{n}".encode() for n in members}
    job = service_db.job(job_id)
    reference = json.loads(job.reference_point_json)
    assert job.hypervolume == hypervolume(non_dominated(points), reference)
    assert (job.status, job.n_complete, job.front_size) == ("succeeded", n_trials, len(expected))
    with service_db.engine.connect() as connection:
        history = connection.execute(
            select(HypervolumeHistory.n_complete, HypervolumeHistory.hypervolume)
            .where(HypervolumeHistory.job_id == job_id)
            .order_by(HypervolumeHistory.n_complete)
        ).all()
    assert [n for n, _ in history] == list(range(1, n_trials + 1))
    assert [hv for _, hv in history] == [
        hypervolume(non_dominated(points[:n]), reference) for n in range(1, n_trials + 1)
    ]
    ctx.engine.dispose()


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial=0.5, max_seconds=3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_only_database_errors_are_transient() -> None:
    lost = sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    assert is_transient(lost)
    try:
        try:
            raise lost
        except sa_exc.OperationalError as error:
            raise RuntimeError("storage wrapper") from error
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(ValueError("bad config"))


def test_retry_transient_retries_then_returns_and_stops_when_asked() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
        return "ok"

    never = threading.Event()
    assert retry_transient(flaky, what="testing", stop=never, max_seconds=0.01) == "ok"
    assert len(calls) == 3
    stopped = threading.Event()
    stopped.set()
    calls.clear()
    with pytest.raises(StopRequested):
        retry_transient(flaky, what="testing", stop=stopped, max_seconds=0.01)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="bad"):
        retry_transient(lambda: int("bad"), what="testing", stop=never, max_seconds=0.01)


def test_a_job_with_a_refused_config_fails_with_the_reason(service_db: ServiceDB) -> None:
    ctx = _context(service_db)
    job_id = create_job(service_db, n_trials=2)
    with service_db.engine.begin() as connection:
        connection.execute(
            update(Job).where(Job.id == job_id).values(config_json='{"dataset": "nope"}')
        )
    assert claim_next(ctx) is None
    job = service_db.job(job_id)
    assert (job.status, job.error) == (
        "failed",
        "config_json: dataset: got 'nope'; allowed: digits, mnist, fashion-mnist, cifar10, "
        "cifar100, npz",
    )
    ctx.engine.dispose()


def test_a_cancel_between_trials_ends_the_job(service_db: ServiceDB) -> None:
    ctx = _context(service_db)
    job_id = create_job(service_db, n_trials=3)
    claim = _claim(ctx)
    record_complete(ctx, claim=claim, outcome=_outcome(claim, accuracy=0.5, params=100))
    service_db.cancel(job_id)  # running, but no trial runs: no worker would stop one
    assert claim_next(ctx) is None
    assert settle_cancelled(ctx) == 1
    job = service_db.job(job_id)
    assert (job.status, job.n_complete, job.finished_at is not None) == ("cancelled", 1, True)
    assert settle_cancelled(ctx) == 0
    ctx.engine.dispose()


def test_a_complete_trial_stores_its_preprocessing(service_db: ServiceDB) -> None:
    from dataclasses import replace

    from service.db.tables import Trial

    ctx = _context(service_db)
    job_id = create_job(service_db, n_trials=1, parallelism=1)
    claim = _claim(ctx)
    stats = '{"dataset":"digits","mean":[4.8],"std":[6.0]}'
    outcome = replace(_outcome(claim, accuracy=0.5, params=100), preprocess_json=stats)
    record_complete(ctx, claim=claim, outcome=outcome)
    with service_db.engine.connect() as connection:
        stored = connection.execute(select(Trial.preprocess_json).where(
            Trial.job_id == job_id, Trial.number == claim.number)).scalar_one()
    assert stored == stats
    ctx.engine.dispose()


def test_claims_are_fair_across_owners(service_db: ServiceDB) -> None:
    """Owner A's two jobs are older than owner B's, and A's first job alone has room for every
    claim; still the claims alternate between owners (strictly oldest first gave A all four)."""
    a_first = create_job(service_db, n_trials=10, parallelism=4)
    a_second = create_job(service_db, n_trials=10, parallelism=4)
    b_only = create_job(service_db, n_trials=10, parallelism=4)
    with service_db.engine.begin() as connection:
        owner_a = connection.execute(select(Job.owner_id).where(Job.id == a_first)).scalar_one()
        connection.execute(update(Job).where(Job.id == a_second).values(owner_id=owner_a))
    ctx = _context(service_db)
    claimed = [_claim(ctx).job.job_id for _ in range(4)]
    ctx.engine.dispose()
    assert claimed == [a_first, b_only, a_first, b_only]
