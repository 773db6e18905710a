"""What the per-epoch cancel check costs (not a CI test), against one training epoch.

The worker's ``Heartbeat.keep_going()`` runs after every epoch and reads the job's cancel flag and
status (one primary-key read, no write lock on SQLite), at most every ``cancel_check_seconds``
(0.25 s). This times one read on a SQLite file and, when
reachable, on the test PostgreSQL server, and times one epoch of the smallest digits trial the
fault tests use (narrow MLP, batch 256) in the same run; it prints the check's cost as a fraction
of that epoch, read every epoch and with the 0.25 s spacing the worker uses. Real trials' epochs
are longer, so this is the worst case. The machine is shared:
expect run-to-run spread of 20-50 %.

    PYTHONPATH=. python tests/benchmarks/bench_cancel_check.py [--checks 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from models import build_model
from search.config import parse_config
from search.datasets import load_dataset, split_dataset
from search.space import decode, sample_params
from search.training import train
from service.db.migrations import upgrade
from service.db.tables import ApiKey, Job
from service.worker.context import WorkerContext
from service.worker.database import worker_engine
from service.worker.lease import Heartbeat

CANCEL_CHECK_SECONDS = WorkerContext.cancel_check_seconds
PG = os.environ.get("PARETONAS_TEST_POSTGRES_URL",
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _job(url: str) -> str:
    engine = create_engine(url)
    job_id = f"job_{uuid.uuid4().hex[:26].upper()}"
    with engine.begin() as connection:
        key = connection.execute(insert(ApiKey).values(
            name="bench", prefix="bench", key_hash=uuid.uuid4().hex * 2).returning(ApiKey.id)
        ).scalar_one()
        connection.execute(insert(Job).values(
            id=job_id, owner_id=key, status="running", dataset="digits", config_json="{}",
            n_trials=1, parallelism=1, study_name=job_id, request_hash="x",
            reference_point_json="null"))
    engine.dispose()
    return job_id


def _check_seconds(url: str, checks: int) -> float:
    """Median seconds of one keep_going() (blocks of 100 checks)."""
    ctx = WorkerContext(engine=worker_engine(url), worker_id="bench", optuna_storage="memory://",
                        lease_seconds=600, heartbeat_seconds=300, max_trial_retries=0,
                        cancel_check_seconds=0.0)  # read every call: the cost of one read
    heartbeat = Heartbeat(ctx, trial_id=1, job_id=_job(url), number=0)
    blocks = []
    for _ in range(max(1, checks // 100)):
        started = time.perf_counter()
        for _ in range(100):
            assert heartbeat.keep_going()
        blocks.append((time.perf_counter() - started) / 100)
    ctx.engine.dispose()
    return statistics.median(blocks)


def _epoch_seconds() -> float:
    config = parse_config({"dataset": "digits", "seed": 0, "space": {"multipliers": [0.25]},
                           "train": {"epochs": 20, "finetune_epochs": 0, "batch_size": 256}})
    splits = split_dataset(load_dataset("digits"), seed=0)
    params = sample_params(config.space, lambda _name, choices: choices[0])
    spec = decode(config.space, params, input_shape=splits.input_shape,
                  num_classes=splits.num_classes)
    seconds: list[float] = []
    last = [time.perf_counter()]

    def on_epoch(_report: object) -> bool:
        now = time.perf_counter()
        seconds.append(now - last[0])
        last[0] = now
        return True

    train(build_model(spec), spec, splits, config.train, on_epoch=on_epoch)
    return statistics.median(seconds[2:])


def _report(backend: str, check: float, epoch: float) -> None:
    spaced = check * min(1.0, epoch / CANCEL_CHECK_SECONDS)  # reads per epoch <= 1
    print(f"{backend:<10} one read: {check * 1e6:8.1f} us = {check / epoch:6.2%} of that epoch; "
          f"with reads >= {CANCEL_CHECK_SECONDS} s apart: {spaced / epoch:6.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000)
    args = parser.parse_args()
    epoch = _epoch_seconds()
    print(f"one epoch of the smallest test trial (digits, batch 256): {epoch * 1e3:.2f} ms "
          "(median; shared machine)")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'service.db'}"
        upgrade(url)
        _report("sqlite", _check_seconds(url, args.checks), epoch)
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    name = f"paretonas_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # no server: say so, SQLite stands
        print(f"postgresql skipped: {type(error).__name__}")
        return
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        _report("postgresql", _check_seconds(url, args.checks), epoch)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
