"""Everything that touches Optuna: storages, samplers, opening studies, and turning Optuna's
trials into ``search.records`` (the ONE place a FrozenTrial becomes a record).

- Storage URLs: ``memory://`` (one in-memory storage per process, for tests), ``sqlite:///f.db``
  (waits up to 60 s for another process's write lock), anything SQLAlchemy takes
  (``postgresql+psycopg://...``). Storages are cached per URL within a process.
- Samplers by name: ``tpe`` (multivariate, grouped: the space is conditional), ``nsga2``,
  ``random``.
  A fresh sampler is made for every trial, seeded from (config seed, trial number): a
  single-process search is reproducible and processes sharing a study draw different trials.
- ``max_params`` is a constraint: ``set_constraint`` stores params - max_params on the trial
  (<= 0 is feasible) before ``tell``, where TPE and NSGA-II read it (Optuna 5's constraint API);
  the random sampler ignores constraints, the front applies the same rule itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage, InMemoryStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from search.config import SearchConfig
from search.errors import SearchError
from search.records import StudyRef, TrialRecord
from search.records import TrialState as RecordState

__all__ = [
    "MAX_PARAMS_CONSTRAINT",
    "MEMORY_URL",
    "UserAttr",
    "close_storage",
    "get_storage",
    "make_sampler",
    "open_study",
    "quiet",
    "to_record",
    "trial_id",
    "trial_seed",
]

MEMORY_URL = "memory://"
MAX_PARAMS_CONSTRAINT = "max_params"
SQLITE_TIMEOUT_S = 60


class UserAttr:
    """Names of the user attributes a trial carries (what records are made from)."""

    VAL_ACCURACY = "val_accuracy"
    TEST_ACCURACY = "test_accuracy"
    PARAMS = "params"
    MACS = "macs"
    FEASIBLE = "feasible"
    TRAIN_SECONDS = "train_seconds"
    SPEC = "spec_json"
    STOPPED = "stopped"
    REASON = "fail_reason"
    RETRY_OF = "retry_of"
    OUTCOME = "outcome"  # stopped_early | duplicate | refused (a COMPLETE trial that is not one)
    ARCH_KEY = "arch_key"  # what "the same architecture and training config" means
    DUPLICATE_OF = "duplicate_of"
    STOPPED_EPOCH = "stopped_epoch"
    LOST_TO = "lost_to"
    CURVE = "curve"  # validation accuracy after each training epoch
    OWNER = "owner"  # who asked the trial (a CLI run's id): what ``fail_running`` may fail


@contextmanager
def quiet() -> Iterator[None]:
    """Silence Optuna's experimental-feature warnings (grouped TPE, metric names) and INFO logs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


optuna.logging.set_verbosity(optuna.logging.WARNING)


_STORAGES: dict[str, BaseStorage] = {}  # per-process cache: one engine (pool) per URL


def _new_storage(url: str) -> BaseStorage:
    if url == MEMORY_URL:
        return InMemoryStorage()
    if url.startswith("sqlite"):
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}})
    if "://" not in url:
        raise SearchError(f"storage: got {url!r}; expected a URL such as {MEMORY_URL}, "
                          "sqlite:///optuna.db or postgresql+psycopg://user@host/db")
    return RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def get_storage(url: str) -> BaseStorage:
    """The storage behind ``url`` (cached per process, so ``memory://`` is shared within it)."""
    if url not in _STORAGES:
        _STORAGES[url] = _new_storage(url)
    return _STORAGES[url]


def close_storage(url: str) -> None:
    """Close the pooled connections of the cached storage behind ``url`` and forget it (tests,
    and processes that drop a database or schema)."""
    storage = _STORAGES.pop(url, None)
    if isinstance(storage, RDBStorage):
        storage.engine.dispose()


def trial_seed(config: SearchConfig, number: int) -> int | None:
    """The sampler seed of trial ``number``: fixed by the config seed, different per trial."""
    if config.seed is None:
        return None
    return (config.seed * 1_000_003 + number) % 2**32


def make_sampler(config: SearchConfig | None, *, number: int = 0) -> BaseSampler:
    """The sampler ``config.sampler`` names, seeded for trial ``number``.

    Without a config (``tell`` and friends, which sample nothing) a plain random sampler.
    """
    if config is None:
        return RandomSampler()
    seed = trial_seed(config, number)
    with quiet():
        if config.sampler == "random":
            return RandomSampler(seed=seed)
        if config.sampler == "nsga2":
            population = max(4, min(50, config.n_trials // 4))
            return NSGAIISampler(population_size=population, seed=seed)
        startup = max(2, min(10, config.n_trials // 4))
        return TPESampler(n_startup_trials=startup, multivariate=True, group=True, seed=seed)


def open_study(ref: StudyRef, *, sampler: BaseSampler | None = None) -> optuna.Study:
    """Load an existing study; SearchError naming the study and the storage when it is missing."""
    try:
        return optuna.load_study(study_name=ref.study_name, storage=get_storage(ref.storage_url),
                                 sampler=sampler or make_sampler(None))
    except KeyError:
        raise SearchError(
            f"study_name: no study {ref.study_name!r} in {ref.storage_url}; create it first "
            "(search.engine.create_study)"
        ) from None


def trial_id(ref: StudyRef, number: int) -> int:
    """The storage's id of trial ``number`` of the study ``ref`` names."""
    storage = get_storage(ref.storage_url)
    try:
        study_id = storage.get_study_id_from_name(ref.study_name)
        return storage.get_trial_id_from_study_id_trial_number(study_id, number)
    except KeyError:
        raise SearchError(
            f"number: study {ref.study_name!r} has no trial {number}"
        ) from None


_STATES: dict[TrialState, RecordState] = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "stopped",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def _opt(attrs: dict[str, Any], key: str, kind: type) -> Any:
    value = attrs.get(key)
    return None if value is None else kind(value)


_OUTCOMES: dict[str, RecordState] = {
    "stopped_early": "stopped_early", "duplicate": "duplicate", "refused": "refused",
}


def _state(trial: FrozenTrial) -> RecordState:
    """Stopped-early trials, duplicates and refusals are told COMPLETE (with values, so every
    sampler learns from them and none meets a pruned multi-objective trial); the ``outcome``
    attribute says which they are."""
    outcome = trial.user_attrs.get(UserAttr.OUTCOME)
    if trial.state == TrialState.COMPLETE and outcome in _OUTCOMES:
        return _OUTCOMES[outcome]
    return _STATES[trial.state]


def to_record(trial: FrozenTrial) -> TrialRecord:
    """A frozen ``TrialRecord`` of an Optuna trial (the one conversion)."""
    attrs = trial.user_attrs
    return TrialRecord(
        number=trial.number,
        state=_state(trial),
        trial_params=dict(trial.params),
        values=None if trial.values is None else tuple(float(v) for v in trial.values),
        val_accuracy=_opt(attrs, UserAttr.VAL_ACCURACY, float),
        test_accuracy=_opt(attrs, UserAttr.TEST_ACCURACY, float),
        params=_opt(attrs, UserAttr.PARAMS, int),
        macs=_opt(attrs, UserAttr.MACS, int),
        feasible=_opt(attrs, UserAttr.FEASIBLE, bool),
        train_seconds=_opt(attrs, UserAttr.TRAIN_SECONDS, float),
        spec_json=_opt(attrs, UserAttr.SPEC, str),
        reason=_opt(attrs, UserAttr.REASON, str),
        duplicate_of=_opt(attrs, UserAttr.DUPLICATE_OF, int),
        stopped_epoch=_opt(attrs, UserAttr.STOPPED_EPOCH, int),
        lost_to=_opt(attrs, UserAttr.LOST_TO, int),
        curve=tuple(float(v) for v in attrs.get(UserAttr.CURVE) or ()),
    )
