"""The Ray driver's room rule (pure arithmetic) and the claim that honours it (both backends)."""

from __future__ import annotations

from sqlalchemy import update

from service.db.tables import Job
from service.worker.claim import claim_next
from service.worker.context import WorkerContext
from service.worker.database import worker_engine
from service.worker.ray_room import RECENT_SECONDS, Released, Resources, Room, demand, free_room
from tests.service import test_worker_support as support
from tests.service.test_worker_support import ServiceDB, create_job

service_db = support.service_db  # the fixture: SQLite and PostgreSQL

CPU1 = Resources(cpus=1.0, gpus=0.0)
QUARTER_GPU = Resources(cpus=1.0, gpus=0.25)


def test_own_trials_count_at_once_even_before_ray_shows_them() -> None:
    room = free_room(
        total={"CPU": 8.0, "GPU": 1.0},
        available={"CPU": 8.0, "GPU": 1.0},  # Ray has not seen the three submitted tasks yet
        nodes=[{"CPU": 8.0, "GPU": 1.0}],
        held=[QUARTER_GPU] * 3,
    )
    assert room == Room(cpus=5.0, gpus=0.25, node_cpus=8.0, node_gpus=1.0)
    assert room.holds(QUARTER_GPU)  # the fourth quarter still fits, despite float error
    assert not room.holds(Resources(cpus=1.0, gpus=0.5))


def test_other_users_of_the_cluster_shrink_the_room() -> None:
    room = free_room(
        total={"CPU": 8.0, "GPU": 2.0},
        available={"CPU": 3.0, "GPU": 0.0},  # someone else holds 4 CPUs and both GPUs
        nodes=[{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}],
        held=[CPU1],
    )
    assert room == Room(cpus=3.0, gpus=0.0, node_cpus=4.0, node_gpus=1.0)
    assert room.holds(CPU1) and not room.holds(QUARTER_GPU)


def test_lately_settled_trials_are_free_while_ray_catches_up() -> None:
    kwargs = {
        "total": {"CPU": 2.0},
        "available": {"CPU": 0.0},  # still counts the two trials just settled
        "nodes": [{"CPU": 2.0}],
        "held": [],
        "released": [Released(resources=CPU1, at=100.0), Released(resources=CPU1, at=101.0)],
    }
    assert free_room(**kwargs, now=101.5).cpus == 2.0  # type: ignore[arg-type]
    assert free_room(**kwargs, now=100.0 + RECENT_SECONDS + 0.5).cpus == 1.0  # type: ignore[arg-type]
    assert free_room(**kwargs, now=200.0).empty  # type: ignore[arg-type]


def test_a_trial_must_fit_one_node() -> None:
    room = free_room(
        total={"CPU": 16.0, "GPU": 2.0},
        available={"CPU": 16.0, "GPU": 2.0},
        nodes=[{"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}],
        held=[],
    )
    assert room.holds(Resources(cpus=8.0, gpus=1.0))
    assert not room.holds(Resources(cpus=1.0, gpus=2.0))  # two GPUs, but never on one node
    assert not room.holds(Resources(cpus=9.0, gpus=0.0))


def test_claims_skip_a_job_whose_trials_do_not_fit(service_db: ServiceDB) -> None:
    gpu_job = create_job(service_db, n_trials=2, parallelism=2)  # the oldest: plain workers take it
    cpu_job = create_job(service_db, n_trials=2)
    with service_db.engine.begin() as connection:
        connection.execute(update(Job).where(Job.id == gpu_job).values(gpus_per_trial=0.5))
        connection.execute(update(Job).where(Job.id == cpu_job).values(cpus_per_trial=2.0))
    ctx = WorkerContext(
        engine=worker_engine(service_db.url),
        worker_id="driver",
        optuna_storage=service_db.optuna_url,
        lease_seconds=30,
        heartbeat_seconds=5,
        max_trial_retries=1,
    )
    try:
        cpu_only = Room(cpus=2.0, gpus=0.0, node_cpus=2.0, node_gpus=0.0)
        claim = claim_next(ctx, fits=cpu_only.fits())
        assert claim is not None and claim.job.job_id == cpu_job
        one_cpu = Room(cpus=1.0, gpus=1.0, node_cpus=4.0, node_gpus=1.0)
        claim = claim_next(ctx, fits=one_cpu.fits())
        assert claim is not None and claim.job.job_id == gpu_job
        too_small = Room(cpus=1.0, gpus=0.0, node_cpus=1.0, node_gpus=0.0)
        assert claim_next(ctx, fits=too_small.fits()) is None
        plain = claim_next(ctx)  # a plain worker ignores the resources
        assert plain is not None and plain.job.job_id == gpu_job
    finally:
        ctx.engine.dispose()


def test_demand_names_one_bundle_per_open_slot_of_active_jobs(service_db: ServiceDB) -> None:
    wide = create_job(service_db, n_trials=10, parallelism=3)
    nearly_done = create_job(service_db, n_trials=4, parallelism=4)
    cancelled = create_job(service_db, n_trials=2, parallelism=2)
    finished = create_job(service_db, n_trials=2, parallelism=2)
    with service_db.engine.begin() as connection:
        connection.execute(update(Job).where(Job.id == wide).values(gpus_per_trial=0.25))
        connection.execute(
            update(Job).where(Job.id == nearly_done).values(n_complete=3, cpus_per_trial=2.0)
        )
        connection.execute(update(Job).where(Job.id == cancelled).values(cancel_requested=True))
        connection.execute(update(Job).where(Job.id == finished).values(status="succeeded"))
    with service_db.engine.connect() as connection:
        bundles = demand(connection)
    assert bundles == [{"CPU": 1.0, "GPU": 0.25}] * 3 + [{"CPU": 2.0}]
