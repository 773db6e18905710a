"""The scheduler in-process on both backends, on an injected clock: one run per due time,
catch-up with skipped misses, failed runs that do not stop the schedule, overlap, warm start."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from search.config import parse_config
from search.space import decode, encode, sample_params
from service.db.engine import read_session, write_session
from service.db.tables import ApiKey, Job, ParetoMember, ScheduleRun
from service.scheduler import Scheduler
from service.settings import DatasetEntry, Settings

SCHEDULES = "/api/v1/schedules"
T0 = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _create(client: TestClient, auth: dict[str, str], **body: object) -> str:
    client.app.state.clock = lambda: T0  # type: ignore[attr-defined]
    data = {"name": "s", "cron": "0 * * * *", "job": {"dataset": "digits", "n_trials": 3}} | body
    response = client.post(SCHEDULES, json=data, headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _runs(engine: Engine, schedule_id: str) -> list[ScheduleRun]:
    with read_session(engine) as session:
        return list(
            session.scalars(
                select(ScheduleRun)
                .where(ScheduleRun.schedule_id == schedule_id)
                .order_by(ScheduleRun.due_at)
            )
        )


def _set_status(engine: Engine, job_id: str | None, status: str) -> None:
    with write_session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=status))


def test_two_schedulers_one_run_per_due_time(
    client: TestClient, auth: dict[str, str], db_engine: Engine, settings: Settings
) -> None:
    schedule_id = _create(client, auth, overlap="queue", cron="*/10 * * * *")
    clock = Clock(T0)
    a = Scheduler(db_engine, settings, clock=clock, name="a")
    b = Scheduler(db_engine, settings, clock=clock, name="b")
    for minute in range(0, 61, 5):
        clock.now = T0 + timedelta(minutes=minute, seconds=1)
        b.tick()  # both see the same due time; the second finds it claimed
        a.tick()
    runs = _runs(db_engine, schedule_id)
    assert [r.due_at for r in runs] == [T0 + timedelta(minutes=m) for m in range(10, 61, 10)]
    assert {(r.status, r.trigger) for r in runs} == {("started", "cron")}
    assert {r.fired_by for r in runs} == {"b"}
    assert len({r.job_id for r in runs}) == 6
    with pytest.raises(IntegrityError), write_session(db_engine) as session:
        session.add(
            ScheduleRun(schedule_id=schedule_id, due_at=runs[0].due_at, trigger="cron",
                        status="skipped", fired_by="test")
        )


def test_down_scheduler_fires_one_catch_up_and_records_the_misses(
    client: TestClient, auth: dict[str, str], db_engine: Engine, settings: Settings
) -> None:
    schedule_id = _create(client, auth)
    scheduler = Scheduler(db_engine, settings, clock=Clock(T0 + timedelta(hours=5, minutes=10)))
    assert scheduler.tick() == 1
    assert scheduler.tick() == 0
    runs = client.get(f"{SCHEDULES}/{schedule_id}/runs", headers=auth).json()["data"]
    catch_up = T0 + timedelta(hours=5)
    assert [(r["due_at"], r["trigger"], r["status"]) for r in runs] == [
        ("2026-03-28T17:00:00Z", "catch-up", "started"),
        *[(f"2026-03-28T{h}:00:00Z", "cron", "skipped") for h in (16, 15, 14, 13)],
    ]
    assert runs[1]["reason"] == (
        "missed: no scheduler ran at this due time; the catch-up run of "
        f"{catch_up.isoformat()} ran instead"
    )
    shown = client.get(f"{SCHEDULES}/{schedule_id}", headers=auth).json()
    assert shown["next_run_at_utc"] == "2026-03-28T18:00:00Z"
    assert shown["job_ids"] == [runs[0]["job_id"]]


def test_run_that_cannot_start_is_failed_and_the_schedule_goes_on(
    client: TestClient, auth: dict[str, str], db_engine: Engine, settings: Settings
) -> None:
    settings.datasets["nightly"] = DatasetEntry(format="npz", path="/data/nightly.npz")
    schedule_id = _create(client, auth, job={"dataset": "nightly", "n_trials": 3}, overlap="queue")
    clock = Clock(T0 + timedelta(hours=1))
    scheduler = Scheduler(db_engine, settings, clock=clock)
    del settings.datasets["nightly"]  # the operator removed it
    scheduler.tick()
    settings.datasets["nightly"] = DatasetEntry(format="npz", path="/data/nightly.npz")
    clock.now += timedelta(hours=1)
    scheduler.tick()
    with write_session(db_engine) as session:
        session.execute(update(ApiKey).values(revoked_at=clock.now))
    clock.now += timedelta(hours=1)
    scheduler.tick()
    runs = _runs(db_engine, schedule_id)
    assert [(r.status, r.reason) for r in runs] == [
        ("failed", "unknown-dataset: dataset: got 'nightly'; allowed: digits (operators "
         "register more with PARETONAS_DATASETS)"),
        ("started", None),
        ("failed", "the owner's API key was revoked; create the schedule with a live key"),
    ]
    assert runs[0].job_id is None and runs[2].job_id is None


def test_a_run_past_the_owners_quota_is_failed(
    client: TestClient, auth: dict[str, str], db_engine: Engine, settings: Settings
) -> None:
    """overlap=queue fired a job at every due time whatever the key's quotas: a run that would
    pass one is failed with the quota's reason, and the schedule goes on."""
    schedule_id = _create(client, auth, overlap="queue")  # 3 trials a run
    limited = settings.model_copy(update={"limits": settings.limits.model_copy(
        update={"max_active_trials_per_key": 5})})
    clock = Clock(T0)
    scheduler = Scheduler(db_engine, limited, clock=clock)
    for hours in (1, 2, 3):
        clock.now = T0 + timedelta(hours=hours)
        scheduler.tick()
        if hours == 2:
            _set_status(db_engine, _runs(db_engine, schedule_id)[0].job_id, "succeeded")
    runs = _runs(db_engine, schedule_id)
    assert [(r.status, r.reason) for r in runs] == [
        ("started", None),
        ("failed", "quota-exceeded: n_trials: got 3 with 3 trials of this key already queued or "
         "running; a key may have at most 5 (wait for jobs to finish or cancel some; operators "
         "raise PARETONAS_LIMITS__MAX_ACTIVE_TRIALS_PER_KEY)"),
        ("started", None),
    ]


def test_overlap_skip_and_queue(
    client: TestClient, auth: dict[str, str], db_engine: Engine, settings: Settings
) -> None:
    skip = _create(client, auth, overlap="skip")
    queue = _create(client, auth, overlap="queue")
    clock = Clock(T0)
    scheduler = Scheduler(db_engine, settings, clock=clock)
    for hours in (1, 2, 3):
        clock.now = T0 + timedelta(hours=hours)
        scheduler.tick()
        if hours == 2:  # the first run's job ends: the next due time starts again
            _set_status(db_engine, _runs(db_engine, skip)[0].job_id, "succeeded")
    first_job = _runs(db_engine, skip)[0].job_id
    assert [(r.status, r.reason) for r in _runs(db_engine, skip)] == [
        ("started", None),
        ("skipped", f"overlap: the previous run's job {first_job} is still queued (overlap=skip)"),
        ("started", None),
    ]
    assert [r.status for r in _runs(db_engine, queue)] == ["started"] * 3


def test_paused_schedule_does_not_fire(
    client: TestClient, auth: dict[str, str], db_engine: Engine, settings: Settings
) -> None:
    schedule_id = _create(client, auth, paused=True)
    assert Scheduler(db_engine, settings, clock=Clock(T0 + timedelta(days=2))).tick() == 0
    assert _runs(db_engine, schedule_id) == []


@pytest.mark.parametrize(
    ("night", "local_run"),
    [
        (datetime(2026, 3, 28, 20, tzinfo=UTC), "2026-03-29T03:00:00+02:00"),
        (datetime(2026, 10, 24, 20, tzinfo=UTC), "2026-10-25T02:30:00+02:00"),
    ],
)
def test_dst_nights_fire_once(
    client: TestClient,
    auth: dict[str, str],
    db_engine: Engine,
    settings: Settings,
    night: datetime,
    local_run: str,
) -> None:
    client.app.state.clock = lambda: night  # type: ignore[attr-defined]
    body = {"name": "n", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
            "overlap": "queue", "job": {"dataset": "digits", "n_trials": 3}}
    schedule_id = client.post(SCHEDULES, json=body, headers=auth).json()["id"]
    clock = Clock(night)
    scheduler = Scheduler(db_engine, settings, clock=clock)
    for _ in range(12 * 12):  # every 5 minutes for 12 hours: the whole night
        clock.now += timedelta(minutes=5)
        scheduler.tick()
    runs = _runs(db_engine, schedule_id)
    zone = ZoneInfo("Europe/Berlin")
    assert [(r.due_at.astimezone(zone).isoformat(), r.status) for r in runs] == [
        (local_run, "started")
    ]


def test_warm_start_enqueues_the_previous_front(
    client: TestClient, auth: dict[str, str], db_engine: Engine, settings: Settings
) -> None:
    schedule_id = _create(client, auth, warm_start="front")
    clock = Clock(T0 + timedelta(hours=1))
    scheduler = Scheduler(db_engine, settings, clock=clock)
    scheduler.tick()
    first = _runs(db_engine, schedule_id)[0]
    with read_session(db_engine) as session:
        job = session.get(Job, first.job_id)
        assert job is not None
        config = parse_config(json.loads(job.config_json))
    assert config.warm_start == ()
    shape, classes = (1, 8, 8), 10
    rng = random.Random(3)
    picks = [sample_params(config.space, lambda _n, c: rng.choice(c)) for _ in range(3)]
    specs = [decode(config.space, p, input_shape=shape, num_classes=classes) for p in picks]
    with write_session(db_engine) as session:  # what the workers leave behind
        session.execute(update(Job).where(Job.id == first.job_id).values(status="succeeded"))
        for number, (spec, params) in enumerate(zip(specs, (300, 100, 200), strict=True)):
            session.add(ParetoMember(job_id=first.job_id, trial_number=number, val_accuracy=0.5,
                                     params=params, spec_json=spec.to_json()))
    clock.now += timedelta(hours=1)
    scheduler.tick()
    second = _runs(db_engine, schedule_id)[1]
    assert (second.status, second.warm_start_from) == ("started", first.job_id)
    with read_session(db_engine) as session:
        job = session.get(Job, second.job_id)
        assert job is not None
        warm = parse_config(json.loads(job.config_json)).warm_start
    assert len({json.dumps(p, sort_keys=True) for p in picks}) == 3
    assert list(warm) == [picks[1], picks[2], picks[0]]  # the front by parameters, ascending
    assert [encode(config.space, spec) for spec in (specs[1], specs[2], specs[0])] == list(warm)
