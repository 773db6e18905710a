"""``validate_job``: the ONE check of what a job asks for (the API's POST /jobs, job templates).

It runs ``search.config.parse_config`` (the search's own validation: space, objectives, training),
then the service's limits from ``settings.limits`` — what one job, and one trial of it, may cost:

===================  ==========================================  =================================
field                limit                                       setting (``PARETONAS_LIMITS__``)
===================  ==========================================  =================================
n_trials             at most ``max_trials``                      ``MAX_TRIALS``
parallelism          at most ``max_parallelism``                 ``MAX_PARALLELISM``
train.epochs         at most ``max_epochs``                      ``MAX_EPOCHS``
train.finetune_...   at most ``max_finetune_epochs``             ``MAX_FINETUNE_EPOCHS``
train.batch_size     at most ``max_batch_size``                  ``MAX_BATCH_SIZE``
train.lr             in [``min_lr``, ``max_lr``]                 ``MIN_LR`` / ``MAX_LR``
space                largest candidate's parameters              ``MAX_PARAMS``
space                largest candidate's MACs x batch_size       ``MAX_MACS_X_BATCH``
===================  ==========================================  =================================

Each refusal is 422 limit-exceeded naming the field, the value, the limit and its setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search.config import SearchConfig, parse_config
from search.engine import reference_point
from search.errors import SpaceError
from search.space import check_space, largest_macs
from service.api.problems import Problem, clip, space_problem
from service.api.schemas import JobCreate
from service.settings import Settings

__all__ = ["DEFAULT_PARALLELISM", "ValidJob", "validate_job"]

DEFAULT_PARALLELISM = 4


@dataclass(frozen=True)
class ValidJob:
    """A job that passed every check: its search config, parallelism and reference point
    (None for a dataset whose shape is known only once a worker loads it)."""

    config: SearchConfig
    parallelism: int
    reference_point: list[float] | None


def validate_job(
    body: JobCreate, *, settings: Settings, warm_start: Sequence[Mapping[str, Any]] = ()
) -> ValidJob:
    """Check ``body`` against the search's rules and ``settings.limits``; Problem (422) if not.
    ``warm_start``: parameter dicts the study runs first (a schedule's previous front)."""
    try:
        config = parse_config(_config_dict(body, settings=settings, warm_start=warm_start))
    except SpaceError as error:
        raise space_problem(error) from None
    parallelism = body.parallelism or min(config.n_trials, DEFAULT_PARALLELISM)
    _check_budget(config, parallelism=parallelism, settings=settings)
    try:
        reference: list[float] | None = reference_point(config)
    except SpaceError as error:
        if error.path != "input_shape":
            raise space_problem(error) from None
        reference = None  # an npz dataset's shape is known once a worker loads it
    if reference is not None:
        _check_size(config, settings=settings)
    return ValidJob(config=config, parallelism=parallelism, reference_point=reference)


def _config_dict(
    body: JobCreate, *, settings: Settings, warm_start: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    allowed = settings.dataset_names()
    if body.dataset not in allowed:
        raise Problem(
            "unknown-dataset",
            status=422,
            detail=f"dataset: got {clip(body.dataset)}; allowed: {', '.join(allowed)} "
            "(operators register more with PARETONAS_DATASETS)",
            allowed=list(allowed),
        )
    entry = settings.datasets.get(body.dataset)
    data: dict[str, Any] = {"dataset": entry.format if entry is not None else body.dataset}
    for name in ("space", "objectives", "n_trials", "sampler", "seed", "max_params", "train",
                 "early_stopping"):
        value = getattr(body, name)
        if value is not None:
            data[name] = value
    if warm_start:
        data["warm_start"] = [dict(params) for params in warm_start]
    return data


def _refuse(path: str, value: object, *, limit: object, env: str, what: str) -> Problem:
    return Problem(
        "limit-exceeded",
        status=422,
        detail=f"{path}: got {clip(value)}; {what} (operators raise PARETONAS_LIMITS__{env})",
        path=path,
        limit=limit,
        setting=f"PARETONAS_LIMITS__{env}",
    )


def _check_budget(config: SearchConfig, *, parallelism: int, settings: Settings) -> None:
    limits, train = settings.limits, config.train
    for path, value, limit, env in (
        ("n_trials", config.n_trials, limits.max_trials, "MAX_TRIALS"),
        ("parallelism", parallelism, limits.max_parallelism, "MAX_PARALLELISM"),
        ("train.epochs", train.epochs, limits.max_epochs, "MAX_EPOCHS"),
        (
            "train.finetune_epochs",
            train.finetune_epochs,
            limits.max_finetune_epochs,
            "MAX_FINETUNE_EPOCHS",
        ),
        ("train.batch_size", train.batch_size, limits.max_batch_size, "MAX_BATCH_SIZE"),
    ):
        if value > limit:
            per = "per job" if path in ("n_trials", "parallelism") else "per trial"
            raise _refuse(
                path, value, limit=limit, env=env, what=f"this service allows at most {limit} {per}"
            )
    if train.lr < limits.min_lr:
        raise _refuse(
            "train.lr",
            train.lr,
            limit=limits.min_lr,
            env="MIN_LR",
            what=f"this service allows a learning rate of at least {limits.min_lr}",
        )
    if train.lr > limits.max_lr:
        raise _refuse(
            "train.lr",
            train.lr,
            limit=limits.max_lr,
            env="MAX_LR",
            what=f"this service allows a learning rate of at most {limits.max_lr}",
        )


def _check_size(config: SearchConfig, *, settings: Settings) -> None:
    """The largest candidate's parameters, and its MACs per sample x batch size."""
    limits = settings.limits
    input_shape, num_classes = config.data_shape()
    params = check_space(config.space, input_shape=input_shape, num_classes=num_classes)
    if params > limits.max_params:
        raise _refuse(
            "space",
            params,
            limit=limits.max_params,
            env="MAX_PARAMS",
            what=f"its largest architecture has {params} parameters on input "
            f"{input_shape}; this service allows at most {limits.max_params} (lower "
            "depth, base_channels or multipliers)",
        )
    macs = largest_macs(config.space, input_shape=input_shape, num_classes=num_classes)
    batch = config.train.batch_size
    if macs * batch > limits.max_macs_x_batch:
        raise _refuse(
            "space",
            macs * batch,
            limit=limits.max_macs_x_batch,
            env="MAX_MACS_X_BATCH",
            what=f"its largest architecture costs {macs} MACs per sample, x batch_size "
            f"{batch} = {macs * batch} per step; this service allows at most "
            f"{limits.max_macs_x_batch} (lower train.batch_size, base_channels, "
            "multipliers or depth)",
        )
