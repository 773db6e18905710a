"""What a worker knows: its identity and settings, and each job's parsed config and study."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from search.config import SearchConfig, parse_config
from search.datasets import Splits, load_dataset, split_dataset
from search.engine import StudyRef, create_study, reference_point

__all__ = ["JobContext", "WorkerContext", "new_worker_id"]


def new_worker_id() -> str:
    """host:pid:random, unique per process, readable in the trials table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class JobContext:
    """A job as the worker needs it: the parsed config and the Optuna study it drives."""

    job_id: str
    config: SearchConfig
    ref: StudyRef
    reference_point: tuple[float, ...]
    n_trials: int
    splits: Splits


@dataclass
class WorkerContext:
    """One worker process: its engine, identity, lease settings and per-process caches.

    ``stop`` is set by SIGTERM/SIGINT: the worker stops after the current epoch and releases its
    trial. ``trial_max_seconds``: a trial still training after that long is failed for good.
    ``cancel_check_seconds``: the least time between two per-epoch reads of the job (lease).
    Caches: each job's parsed config and created study (``create_study`` is idempotent but
    not free) and dataset splits per (dataset, seed), so a worker loads digits once, not per trial.
    """

    engine: Engine
    worker_id: str
    optuna_storage: str
    lease_seconds: float
    heartbeat_seconds: float
    max_trial_retries: int
    db_retry_max_seconds: float = 30.0
    trial_max_seconds: float | None = None
    cancel_check_seconds: float = 0.25
    device: str = "cpu"
    datasets: Mapping[str, tuple[str, Path]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    _jobs: dict[str, JobContext] = field(default_factory=dict)
    _splits: dict[tuple[str, int], Splits] = field(default_factory=dict)

    def job_context(
        self,
        *,
        job_id: str,
        dataset: str,
        study_name: str,
        config_json: str,
        reference_point_json: str | None,
        n_trials: int,
    ) -> JobContext:
        """Parse a job row's config (SpaceError on a bad one) and make sure its study exists.

        The reference point is the one stored with the job, else ``search.engine.reference_point``.
        Cached per job: a job's config, study and budget never change.
        """
        if job_id in self._jobs:
            return self._jobs[job_id]
        parsed = parse_config(json.loads(config_json))
        splits = self.splits(dataset, config=parsed)
        config = parsed.with_data(splits)
        ref = StudyRef(storage_url=self.optuna_storage, study_name=study_name)
        create_study(ref=ref, config=config)
        stored = json.loads(reference_point_json) if reference_point_json else None
        reference = tuple(float(v) for v in (stored or reference_point(config)))
        self._jobs[job_id] = JobContext(
            job_id=job_id,
            config=config,
            ref=ref,
            reference_point=reference,
            n_trials=n_trials,
            splits=splits,
        )
        return self._jobs[job_id]

    def splits(self, dataset: str, *, config: SearchConfig) -> Splits:
        """The train/val/test splits of a job's dataset (the job row's name), loaded once.

        A name the operator registered (settings ``datasets``) is read from its path in its
        format; any other name is the config's built-in dataset. Every worker of a job must split
        alike, so an unseeded search splits with seed 0. DatasetError when it cannot be loaded.
        """
        seed = config.seed if config.seed is not None else 0
        key = (dataset, seed)
        if key not in self._splits:
            if dataset in self.datasets:
                fmt, path = self.datasets[dataset]
                data = load_dataset(fmt, path=path)
            else:
                data = load_dataset(config.dataset)
            self._splits[key] = split_dataset(data, seed=seed)
        return self._splits[key]
