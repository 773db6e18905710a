"""Learning curves: epochs go to ``trial_epochs`` with the lease renewal and with the result."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from search.engine import TrialOutcome
from search.training import EpochReport
from service.db.tables import Trial, TrialEpoch
from service.worker.context import WorkerContext
from service.worker.lease import Heartbeat
from service.worker.record import record_complete, record_stopped
from tests.service import test_worker_support as support
from tests.service.test_worker_claim import _claim, _context, _outcome
from tests.service.test_worker_support import ServiceDB, create_job

service_db = support.service_db  # the fixture: SQLite and PostgreSQL


@pytest.fixture
def contexts(service_db: ServiceDB) -> Iterator[Callable[[str], WorkerContext]]:
    """Worker contexts by worker id, their engines disposed at the end."""
    made: list[WorkerContext] = []

    def make(worker_id: str = "w1") -> WorkerContext:
        made.append(_context(service_db, worker_id=worker_id))
        return made[-1]

    yield make
    for ctx in made:
        ctx.engine.dispose()


def _report(epoch: int, phase: str = "train") -> EpochReport:
    return EpochReport(
        epoch=epoch,
        phase=phase,  # type: ignore[arg-type]
        train_loss=1.0 / epoch,
        val_accuracy=0.5 + epoch / 100,
        lr=0.01,
        epochs_total=4,
        seconds=0.25,
    )


def _curve(db: ServiceDB, job_id: str, number: int) -> list[tuple[int, str, float]]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            select(TrialEpoch.epoch, TrialEpoch.phase, TrialEpoch.val_accuracy)
            .where(TrialEpoch.job_id == job_id, TrialEpoch.trial_number == number)
            .order_by(TrialEpoch.epoch)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_renewals_write_the_epochs_so_far_and_the_result_the_rest(
    service_db: ServiceDB, contexts: Callable[[str], WorkerContext]
) -> None:
    job_id = create_job(service_db, n_trials=2, epochs=1)
    ctx = contexts("w1")
    claim = _claim(ctx)
    heartbeat = Heartbeat(ctx, trial_id=claim.trial_id, job_id=job_id, number=claim.number)
    assert heartbeat.note_epoch(_report(1)) and heartbeat.note_epoch(_report(2))
    heartbeat.beat()  # one renewal: the lease and both epochs, one transaction
    assert _curve(service_db, job_id, claim.number) == [(1, "train", 0.51), (2, "train", 0.52)]
    heartbeat.note_epoch(_report(3))
    heartbeat.note_epoch(_report(4, "finetune"))
    assert [r.epoch for r in heartbeat.unwritten()] == [3, 4]
    # A renewal whose commit went through but whose answer was lost hands epoch 2 in again.
    record_complete(
        ctx,
        claim=claim,
        outcome=_outcome(claim, accuracy=0.9, params=1000),
        epochs=[_report(2), *heartbeat.unwritten()],
    )
    assert _curve(service_db, job_id, claim.number) == [
        (1, "train", 0.51),
        (2, "train", 0.52),
        (3, "train", 0.53),
        (4, "finetune", 0.54),
    ]


def test_a_lost_lease_writes_nothing_and_a_stopped_trial_keeps_its_partial_result(
    service_db: ServiceDB, contexts: Callable[[str], WorkerContext]
) -> None:
    job_id = create_job(service_db, n_trials=2, epochs=1)
    ctx = contexts("w1")
    claim = _claim(ctx)
    other = contexts("w2")  # not the trial's worker: its renewal touches no row
    stranger = Heartbeat(other, trial_id=claim.trial_id, job_id=job_id, number=claim.number)
    stranger.note_epoch(_report(1))
    stranger.beat()
    assert stranger.lease_lost.is_set()
    assert _curve(service_db, job_id, claim.number) == []
    complete = _outcome(claim, accuracy=0.7, params=1234)
    partial = TrialOutcome(**{**complete.__dict__, "state": "stopped", "weights": None})
    record_stopped(ctx, claim=claim, reason="job cancelled", outcome=partial, epochs=[_report(1)])
    with service_db.engine.connect() as connection:
        row = connection.execute(select(Trial).where(Trial.id == claim.trial_id)).one()
    assert (row.state, row.val_accuracy, row.params, row.macs, row.error) == (
        "stopped",
        0.7,
        1234,
        1234 * 3,
        "job cancelled",
    )
    assert _curve(service_db, job_id, claim.number) == [(1, "train", 0.51)]
