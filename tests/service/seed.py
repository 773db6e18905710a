"""Build a job with recorded results directly in the service tables (dashboard tests, benchmark).

``seed_job`` writes what the workers would have written after ``n_trials`` trials: the trial
rows (complete, some infeasible, stopped and failed), the Pareto members (computed one trial at a
time with ``search.pareto.insert``, as ``service.worker.front`` does), one hypervolume history
row per complete trial, learning-curve epochs and stand-in weights of the front members. The
architectures are real digits specs, so their parameter counts are exact (``count_params``).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from itertools import product

from sqlalchemy import Engine, insert

from models.costs import count_macs, count_params
from models.errors import SpecError
from models.spec import ArchSpec, LayerSpec
from search.config import parse_config
from search.pareto import FrontPoint, hypervolume
from search.pareto import insert as front_insert
from service.db.base import utcnow
from service.db.tables import (
    HypervolumeHistory,
    Job,
    ParetoMember,
    Trial,
    TrialEpoch,
    TrialWeights,
)

__all__ = ["SeededJob", "digits_specs", "seed_job"]

BATCH = 5000


@dataclass(frozen=True)
class SeededJob:
    """What ``seed_job`` wrote: the job id, its front (trial numbers by params), counts."""

    job_id: str
    front: tuple[int, ...]
    n_complete: int
    n_failed: int
    hypervolume: float | None
    reference: tuple[float, float]


@lru_cache(maxsize=1)
def digits_specs() -> tuple[ArchSpec, ...]:
    """Two-layer digits MLPs over every kind pair and four multipliers (exact costs)."""
    specs = []
    kinds, multipliers = ("full", "bilinear", "lowrank"), (0.25, 0.5, 1.0, 2.0)
    for k1, k2, m1, m2 in product(kinds, kinds, multipliers, multipliers):
        try:
            spec = ArchSpec(
                input_shape=(1, 8, 8),
                num_classes=10,
                base_channels=16,
                layers=(LayerSpec(kind=k1, multiplier=m1), LayerSpec(kind=k2, multiplier=m2)),
                classifier=LayerSpec(kind="full"),
            )
            count_params(spec)
        except SpecError:
            continue
        specs.append(spec)
    return tuple(specs)


def seed_job(
    engine: Engine,
    *,
    job_id: str,
    owner_id: int,
    n_trials: int,
    seed: int = 0,
    epochs: int = 3,
    status: str = "succeeded",
) -> SeededJob:
    """Write a job with ``n_trials`` recorded trials; returns what the front came out as."""
    rng = random.Random(seed)
    specs = digits_specs()
    costs = [(spec.to_json(), count_params(spec), count_macs(spec)) for spec in specs]
    max_params = sorted(p for _, p, _ in costs)[int(len(costs) * 0.9)]
    config = parse_config(
        {"dataset": "digits", "n_trials": n_trials, "seed": seed, "max_params": max_params}
    )
    reference = (0.0, float(max_params))
    now = utcnow()
    start = now - timedelta(seconds=n_trials)
    trials: list[dict[str, object]] = []
    history: list[dict[str, object]] = []
    curve: list[dict[str, object]] = []
    front: tuple[FrontPoint, ...] = ()
    details: dict[int, tuple[float, float, int, int, str]] = {}
    n_complete = n_failed = 0
    volume: float | None = None
    for number in range(n_trials):
        spec_json, params, macs = costs[rng.randrange(len(costs))]
        roll = rng.random()
        state = "failed" if roll < 0.02 else "stopped" if roll < 0.05 else "complete"
        accuracy = min(0.995, 0.45 + 0.07 * math.log10(params) + rng.gauss(0, 0.04))
        test = accuracy + rng.gauss(0, 0.01)
        feasible = params <= max_params
        started = start + timedelta(seconds=number)
        row: dict[str, object] = {
            "job_id": job_id,
            "number": number,
            "attempt": 0,
            "state": state,
            "params_json": json.dumps({"index": number}),
            "spec_json": spec_json,
            "started_at": started,
            "finished_at": started + timedelta(seconds=0.9),
            "worker_id": "seed",
            "val_accuracy": None,
            "test_accuracy": None,
            "params": None,
            "macs": None,
            "feasible": None,
            "train_seconds": None,
            "error": None,
        }
        if state == "failed":
            n_failed += 1
            row["error"] = "training raised RuntimeError: seeded failure"
        else:
            row.update(
                val_accuracy=accuracy,
                test_accuracy=test,
                params=params,
                macs=macs,
                feasible=feasible,
                train_seconds=0.9,
            )
            curve += _epochs(job_id, number, epochs=epochs, final=accuracy, rng=rng)
        trials.append(row)
        if state != "complete":
            continue
        n_complete += 1
        if feasible:
            update = front_insert(
                front, FrontPoint(number=number, accuracy=accuracy, params=params)
            )
            if update.added:
                details[number] = (accuracy, test, params, macs, spec_json)
            front = update.front
            volume = hypervolume(front, reference) if front else None
        history.append(
            {
                "job_id": job_id,
                "n_complete": n_complete,
                "hypervolume": volume,
                "recorded_at": started + timedelta(seconds=0.9),
            }
        )
    members = [
        {
            "job_id": job_id,
            "trial_number": point.number,
            "val_accuracy": details[point.number][0],
            "test_accuracy": details[point.number][1],
            "params": details[point.number][2],
            "macs": details[point.number][3],
            "spec_json": details[point.number][4],
            "added_at": now,
        }
        for point in front
    ]
    with engine.begin() as connection:
        connection.execute(
            insert(Job).values(
                id=job_id,
                owner_id=owner_id,
                status=status,
                dataset="digits",
                config_json=json.dumps(config.to_dict(), sort_keys=True),
                n_trials=n_trials,
                parallelism=4,
                study_name=f"paretonas-{job_id}",
                request_hash="0" * 64,
                reference_point_json=json.dumps(list(reference)),
                n_complete=n_complete,
                n_failed=n_failed,
                n_running=0,
                front_size=len(front),
                hypervolume=volume,
                created_at=start,
                started_at=start,
                finished_at=now if status not in ("queued", "running") else None,
                updated_at=now,
            )
        )
        for table, rows in ((Trial, trials), (HypervolumeHistory, history), (TrialEpoch, curve)):
            for i in range(0, len(rows), BATCH):
                connection.execute(insert(table), rows[i : i + BATCH])
        if members:
            connection.execute(insert(ParetoMember), members)
            connection.execute(
                insert(TrialWeights),
                [
                    {"job_id": job_id, "trial_number": m["trial_number"], "data": b"w%d" % i}
                    for i, m in enumerate(members)
                ],
            )
    by_params = sorted(front, key=lambda p: (p.params, p.number))
    return SeededJob(
        job_id=job_id,
        front=tuple(p.number for p in by_params),
        n_complete=n_complete,
        n_failed=n_failed,
        hypervolume=volume,
        reference=reference,
    )


def _epochs(
    job_id: str, number: int, *, epochs: int, final: float, rng: random.Random
) -> list[dict[str, object]]:
    rows = []
    for epoch in range(1, epochs + 1):
        rows.append(
            {
                "job_id": job_id,
                "trial_number": number,
                "epoch": epoch,
                "phase": "finetune" if epoch == epochs and epochs > 1 else "train",
                "train_loss": 2.3 / epoch + rng.random() * 0.01,
                "val_accuracy": final * epoch / epochs,
                "lr": 0.01,
                "seconds": 0.1,
            }
        )
    return rows
