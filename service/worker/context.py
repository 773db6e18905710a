"""What a worker knows: its identity and settings, and each job's parsed config and study."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field

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


@dataclass
class WorkerContext:
    """One worker process: its engine, identity, lease settings and per-process caches.

    ``stop`` is set by SIGTERM/SIGINT: the worker stops after the current epoch and releases its
    trial. Caches: each job's parsed config and created study (``create_study`` is idempotent but
    not free) and dataset splits per (dataset, seed), so a worker loads digits once, not per trial.
    """

    engine: Engine
    worker_id: str
    optuna_storage: str
    lease_seconds: float
    heartbeat_seconds: float
    max_trial_retries: int
    db_retry_max_seconds: float = 30.0
    device: str = "cpu"
    stop: threading.Event = field(default_factory=threading.Event)
    _jobs: dict[str, JobContext] = field(default_factory=dict)
    _splits: dict[tuple[str, int], Splits] = field(default_factory=dict)

    def job_context(
        self,
        *,
        job_id: str,
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
        config = parsed.with_data(self.splits(parsed))
        ref = StudyRef(storage_url=self.optuna_storage, study_name=study_name)
        create_study(ref=ref, config=config)
        stored = json.loads(reference_point_json) if reference_point_json else None
        reference = tuple(float(v) for v in (stored or reference_point(config)))
        self._jobs[job_id] = JobContext(
            job_id=job_id, config=config, ref=ref, reference_point=reference, n_trials=n_trials
        )
        return self._jobs[job_id]

    def splits(self, config: SearchConfig) -> Splits:
        """The train/val/test splits of a job's dataset, loaded once per process.

        Every worker of a job must split alike, so an unseeded search splits with seed 0.
        """
        seed = config.seed if config.seed is not None else 0
        key = (config.dataset, seed)
        if key not in self._splits:
            self._splits[key] = split_dataset(load_dataset(config.dataset), seed=seed)
        return self._splits[key]
