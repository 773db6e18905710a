"""The worker path of issue 16: duplicates and stopped-early trials as rows, jobs that end early."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from search import engine as search_engine
from search.engine import TrialOutcome
from service.worker.claim import Claim, claim_next
from service.worker.context import WorkerContext
from service.worker.database import worker_engine
from service.worker.record import record_complete
from tests.service import test_worker_support as support
from tests.service.test_worker_support import ServiceDB, create_job

service_db = support.service_db  # the fixture: SQLite and PostgreSQL

FOUR = {"depth": [1], "kinds": ["full", "bilinear"], "multipliers": [0.25, 0.5]}


@pytest.fixture
def ctx(service_db: ServiceDB) -> Iterator[WorkerContext]:
    context = WorkerContext(
        engine=worker_engine(service_db.url),
        worker_id="w1",
        optuna_storage=service_db.optuna_url,
        lease_seconds=30,
        heartbeat_seconds=5,
        max_trial_retries=2,
    )
    yield context
    context.engine.dispose()


def _finish(ctx: WorkerContext, claim: Claim, *, state: str = "complete") -> None:
    """Tell and record ``claim`` as the worker loop does, with made-up measurements."""
    params = 1000 + 100 * claim.number
    outcome = TrialOutcome(
        number=claim.number,
        state=state,  # type: ignore[arg-type]
        values=(0.5 + claim.number / 100, float(params)),
        val_accuracy=0.5 + claim.number / 100,
        test_accuracy=0.5,
        params=params,
        macs=params,
        feasible=True,
        train_seconds=0.5,
        spec_json=claim.ticket.spec_json,
        weights=b"w",
        reason="stopped early at epoch 1: test" if state == "stopped_early" else None,
        stopped_epoch=1 if state == "stopped_early" else None,
        lost_to=0 if state == "stopped_early" else None,
        curve=(0.5,),
    )
    search_engine.tell(ref=claim.job.ref, outcome=outcome)
    record_complete(ctx, claim=claim, outcome=outcome)


def test_duplicates_are_rows_and_a_used_up_space_ends_the_job(
    service_db: ServiceDB, ctx: WorkerContext
) -> None:
    job_id = create_job(service_db, n_trials=6, space=FOUR, seed=5)
    for _ in range(10):  # 4 distinct architectures, then the job ends
        claim = claim_next(ctx)
        if claim is None:
            break
        _finish(ctx, claim)
    assert claim_next(ctx) is None
    job = service_db.job(job_id)
    assert (job.status, job.n_complete, job.n_running) == ("succeeded", 4, 0)
    assert job.finished_reason == (
        "all 4 distinct architectures of the space are done; widen the space to search further"
    )
    rows = service_db.trials(job_id)
    complete = {r.number: r for r in rows if r.state == "complete"}
    duplicates = [r for r in rows if r.state == "duplicate"]
    assert len(complete) == 4 and len({r.params_json for r in complete.values()}) == 4
    assert job.n_skipped == len(duplicates) == len(rows) - 4
    for row in duplicates:
        original = complete[row.duplicate_of]
        assert json.loads(row.params_json) == json.loads(original.params_json)
        assert (row.val_accuracy, row.params, row.train_seconds, row.worker_id) == (
            original.val_accuracy,
            original.params,
            0.0,
            None,
        )
        assert row.error == (
            f"same architecture and training config as trial {original.number} (complete); "
            "not trained again"
        )
    assert job.front_size <= 4


def test_a_stopped_early_trial_counts_but_never_joins_the_front(
    service_db: ServiceDB, ctx: WorkerContext
) -> None:
    job_id = create_job(service_db, n_trials=2, seed=1)
    first = claim_next(ctx)
    assert first is not None
    _finish(ctx, first)
    second = claim_next(ctx)
    assert second is not None
    _finish(ctx, second, state="stopped_early")
    job = service_db.job(job_id)
    assert (job.status, job.n_complete, job.n_stopped_early, job.front_size) == (
        "succeeded",
        1,
        1,
        1,
    )
    row = service_db.trials(job_id)[second.number]
    assert (row.state, row.stopped_epoch, row.lost_to, row.error) == (
        "stopped_early",
        1,
        0,
        "stopped early at epoch 1: test",
    )
    assert claim_next(ctx) is None
