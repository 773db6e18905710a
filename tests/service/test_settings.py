"""Settings from PARETONAS_* variables, defaults under data_dir, refusals that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import DatasetEntry, Settings, get_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PARETONAS_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()


def test_defaults_are_sqlite_files_under_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARETONAS_DATA_DIR", "/srv/nas")
    settings = Settings()
    assert (settings.database_url, settings.optuna_storage) == (
        "sqlite:////srv/nas/service.db",
        "sqlite:////srv/nas/optuna.db",
    )
    assert (settings.lease_seconds, settings.heartbeat_seconds, settings.max_trial_retries) == (
        60.0,
        10.0,
        3,
    )
    assert (settings.limits.max_trials, settings.limits.max_parallelism) == (10_000, 64)
    assert settings.dataset_names() == ("digits",)


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARETONAS_DATABASE_URL", "postgresql+psycopg://u@db/nas")
    monkeypatch.setenv(
        "PARETONAS_DATASETS",
        '{"shirts": {"format": "fashion-mnist", "path": "/data/fm"},'
        ' "cells": {"format": "npz", "path": "/data/cells.npz"}}',
    )
    monkeypatch.setenv("PARETONAS_LIMITS__MAX_TRIALS", "77")
    monkeypatch.setenv("PARETONAS_LEASE_SECONDS", "30")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@db/nas"
    assert settings.optuna_storage == "sqlite:///.paretonas/optuna.db"
    shirts = DatasetEntry(format="fashion-mnist", path=Path("/data/fm"))
    assert settings.datasets["shirts"] == shirts
    assert settings.dataset_names() == ("digits", "cells", "shirts")
    assert (settings.limits.max_trials, settings.limits.max_parallelism) == (77, 64)
    assert settings.lease_seconds == 30.0


def test_unknown_dataset_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARETONAS_DATASETS", '{"x": {"format": "imagenet", "path": "/d"}}')
    with pytest.raises(ValidationError, match=r"datasets\.x\.format"):
        Settings()


def test_builtin_name_cannot_be_registered() -> None:
    with pytest.raises(ValidationError, match="'digits' is built in; register the files under"):
        Settings(datasets={"digits": {"format": "npz", "path": "/d.npz"}})


def test_heartbeat_must_be_shorter_than_lease() -> None:
    with pytest.raises(ValidationError, match="heartbeat_seconds must be below lease_seconds"):
        Settings(lease_seconds=5, heartbeat_seconds=5)


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARETONAS_PORT", "9001")
    first = get_settings()
    monkeypatch.setenv("PARETONAS_PORT", "9002")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().port == 9002
    get_settings.cache_clear()
