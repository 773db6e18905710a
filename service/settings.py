"""Service settings from the environment (prefix ``PARETONAS_``), read once by ``get_settings()``.

    PARETONAS_DATA_DIR=./.paretonas            # SQLite files: service.db and optuna.db
    PARETONAS_DATABASE_URL=postgresql+psycopg://user@db/paretonas
    PARETONAS_OPTUNA_STORAGE=postgresql+psycopg://user@db/paretonas_optuna
    PARETONAS_DATASETS='{"fashion": {"format": "fashion-mnist", "path": "/data/fashion"}}'
    PARETONAS_LIMITS__MAX_TRIALS=10000         # or PARETONAS_LIMITS='{"max_trials": 10000}'
    PARETONAS_SCHEDULER_ENABLED=false          # `paretonas serve` without its scheduler thread
    PARETONAS_MAX_BODY_BYTES=1048576           # larger request bodies: 413 (read no further)
    PARETONAS_DB_POOL_SIZE=10                  # connections the API keeps to its database
    PARETONAS_RESPONSE_CACHE_MB=64             # rendered fronts / trial pages kept per API process
    PARETONAS_WORKER_NICE=10                   # workers yield the CPU to an API on the same host

Empty database URLs default to SQLite files under ``data_dir`` (separate files: a worker holds the
service file's write lock while it asks Optuna for a trial). Our migrations use their own version
table (``paretonas_alembic_version``) and never look at Optuna's tables, but Optuna has a table
named ``trials`` too, so on PostgreSQL give Optuna its own database (docker/compose.yaml does) or
its own schema in the same database, e.g. ``...?options=-csearch_path%3Doptuna``.

Tests never rely on a module global: they build ``Settings(...)`` and hand it to the app factory,
or call ``get_settings.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.logs import LogFormat

__all__ = ["BUILTIN_DATASETS", "DatasetEntry", "Limits", "Settings", "get_settings"]

BUILTIN_DATASETS = ("digits",)
DatasetFormat = Literal["mnist", "fashion-mnist", "cifar10", "cifar100", "npz"]


class DatasetEntry(BaseModel):
    """An operator-registered dataset: its file format and where its files are on the workers."""

    format: DatasetFormat
    path: Path


class Limits(BaseModel):
    """What one job may ask for, and what one API key may have at once (``PARETONAS_LIMITS__*``).

    The cost limits bound what one trial can make a GPU do: epochs, fine-tune epochs, batch size,
    the learning-rate range, the largest candidate's parameters and its MACs per sample times the
    batch size (a proxy for activation memory). Quotas bound one key: trials queued or running
    across its jobs, and jobs submitted in any 24 hours (429 with Retry-After beyond them).
    """

    max_trials: int = Field(default=10_000, ge=1)
    max_parallelism: int = Field(default=64, ge=1)
    max_epochs: int = Field(default=500, ge=1)
    max_finetune_epochs: int = Field(default=100, ge=0)
    max_batch_size: int = Field(default=4096, ge=1)
    min_lr: float = Field(default=1e-7, gt=0)
    max_lr: float = Field(default=10.0, gt=0)
    max_params: int = Field(default=50_000_000, ge=1)
    max_macs_x_batch: int = Field(default=2_000_000_000_000, ge=1)
    max_active_trials_per_key: int = Field(default=20_000, ge=1)
    max_jobs_per_day: int = Field(default=1_000, ge=1)
    quota_retry_after_seconds: int = Field(default=60, ge=1)


class Settings(BaseSettings):
    """Everything the API, the CLI and the workers read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="PARETONAS_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path(".paretonas")
    database_url: str = ""  # empty: sqlite:///<data_dir>/service.db
    optuna_storage: str = ""  # empty: sqlite:///<data_dir>/optuna.db
    datasets: dict[str, DatasetEntry] = Field(default_factory=dict)
    lease_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    max_trial_retries: int = Field(default=3, ge=0)
    worker_poll_seconds: float = Field(default=2.0, gt=0)
    db_retry_max_seconds: float = Field(default=60.0, ge=0)
    ray_address: str = ""  # `paretonas worker` drives this Ray cluster ("auto", head host:port)
    trial_max_seconds: float = Field(default=21_600.0, gt=0)  # 6 h of wall time per trial
    worker_stale_seconds: float = Field(default=60.0, gt=0)  # not seen for longer: not live
    log_format: LogFormat = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    limits: Limits = Field(default_factory=Limits)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_json_depth: int = Field(default=32, ge=4, le=256)
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    retry_after_seconds: int = Field(default=2, ge=1)
    response_cache_mb: int = Field(default=64, ge=0)  # rendered results kept per API process
    worker_nice: int = Field(default=10, ge=0, le=19)  # a worker's CPU priority below the API's
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    scheduler_enabled: bool = True  # `paretonas serve` runs the cron scheduler in a thread
    scheduler_poll_seconds: float = Field(default=5.0, gt=0)
    # The dashboard's sign-in: cookies are signed with this secret (empty: a random one kept in
    # <data_dir>/session-secret; give every API replica the same value) and last session_hours.
    session_secret: str = ""
    session_hours: float = Field(default=12.0, gt=0)

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'service.db'}"
        if not self.optuna_storage:
            self.optuna_storage = f"sqlite:///{self.data_dir / 'optuna.db'}"
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds must be below lease_seconds; got heartbeat_seconds="
                f"{self.heartbeat_seconds}, lease_seconds={self.lease_seconds}: "
                f"set PARETONAS_HEARTBEAT_SECONDS to about a sixth of the lease"
            )
        if self.limits.min_lr >= self.limits.max_lr:
            raise ValueError(
                f"limits.min_lr must be below limits.max_lr; got {self.limits.min_lr} and "
                f"{self.limits.max_lr}: set PARETONAS_LIMITS__MIN_LR / __MAX_LR"
            )
        if self.worker_stale_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"worker_stale_seconds must be above heartbeat_seconds; got worker_stale_seconds="
                f"{self.worker_stale_seconds}, heartbeat_seconds={self.heartbeat_seconds}: set "
                "PARETONAS_WORKER_STALE_SECONDS to a few heartbeats"
            )
        clash = sorted(set(self.datasets) & set(BUILTIN_DATASETS))
        if clash:
            raise ValueError(
                f"datasets: {clash[0]!r} is built in; register the files under another name"
            )
        return self

    def dataset_names(self) -> tuple[str, ...]:
        """Names a job may use: the built-in ones, then the operator's, sorted."""
        return (*BUILTIN_DATASETS, *sorted(self.datasets))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings()
