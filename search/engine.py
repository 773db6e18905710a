"""The study driver service workers and the CLI call: plain frozen records in and out.

One trial is ``ask`` (choose an architecture), ``run_ticket`` (build, train, prune, measure),
``tell`` (report the objectives). Many processes may do this on one study through one storage
(SQLite file or PostgreSQL); Optuna hands each ``ask`` a distinct trial number.

``next_trial`` is what the CLI and the workers call instead of ``ask``: it settles duplicates and
refusals (``search.verdicts``) without training, telling the study, until a trial needs training
or the space is used up. ``n_trials`` counts trained trials (complete or stopped early).

>>> ref = StudyRef(storage_url="memory://", study_name="engine-doctest")
>>> config = parse_config({"n_trials": 2, "seed": 0, "space": {"train": {"epochs": 1}}})
>>> create_study(ref=ref, config=config)
>>> ticket = ask(ref=ref, config=config)
>>> ticket.number
0
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from models import build_model
from models.serialize import to_safetensors
from models.spec import ArchSpec
from search.bounds import check_max_params, reference_point
from search.config import SearchConfig, parse_config
from search.datasets import Splits
from search.early_stop import Watch
from search.errors import SearchError
from search.pareto import FrontPoint, non_dominated
from search.records import (
    FrontMember,
    NextTrial,
    OutcomeState,
    StudyRef,
    TrialOutcome,
    TrialRecord,
    TrialTicket,
)
from search.space import Choice, check_space, decode, sample_params
from search.space.extent import count_architectures
from search.study import (
    MAX_PARAMS_CONSTRAINT,
    UserAttr,
    get_storage,
    make_sampler,
    open_study,
    quiet,
    to_record,
    trial_id,
    trial_seed,
)
from search.training import EpochReport, train
from search.verdicts import arch_key, baseline, finished_keys, pre_verdict

__all__ = [
    "MAX_SKIPS_IN_A_ROW",
    "FrontMember",
    "NextTrial",
    "StudyRef",
    "TrialOutcome",
    "TrialRecord",
    "TrialTicket",
    "ask",
    "check_max_params",
    "create_study",
    "fail",
    "fail_running",
    "front",
    "next_trial",
    "parse_config",
    "reference_point",
    "retry",
    "run_ticket",
    "study_config",
    "study_exists",
    "tell",
    "trials",
]

_CONFIG_ATTR = "paretonas_config"
# A sampler that proposes only finished architectures this many times in a row has nothing new
# left to offer (or the space is used up where it cannot be counted): the search ends.
MAX_SKIPS_IN_A_ROW = 50


def create_study(*, ref: StudyRef, config: SearchConfig) -> None:
    """Create the study (idempotent: an existing one with the same objectives is kept).

    Checks the space against the dataset's shape, names the objectives, stores the config, and
    enqueues ``config.warm_start`` as the first trials (once, however many workers call this).
    """
    input_shape, num_classes = config.data_shape()
    check_space(config.space, input_shape=input_shape, num_classes=num_classes)
    check_max_params(config)
    with quiet():
        study = optuna.create_study(
            storage=get_storage(ref.storage_url), study_name=ref.study_name,
            directions=config.directions, load_if_exists=True, sampler=make_sampler(None),
        )
        if len(study.directions) != len(config.objectives):
            raise SearchError(
                f"objectives: study {ref.study_name!r} already exists with "
                f"{len(study.directions)} objectives, config asks for {list(config.objectives)}; "
                "use another study name"
            )
        if _CONFIG_ATTR in study.user_attrs:
            return
        study.set_metric_names(list(config.objectives))
        study.set_user_attr(_CONFIG_ATTR, json.dumps(config.to_dict(), sort_keys=True))
    for params in config.warm_start:
        study.enqueue_trial(dict(params), user_attrs={"warm_start": True}, skip_if_exists=True)


def ask(*, ref: StudyRef, config: SearchConfig, owner: str | None = None) -> TrialTicket:
    """Start the next trial: enqueued parameters first, else what the sampler proposes.

    ``owner`` (e.g. a CLI run's id) is stored on the trial for ``fail_running``. Should anything
    fail after Optuna handed out the trial, the trial is told FAIL before the error propagates:
    no path leaves a RUNNING trial behind in a live process."""
    study = open_study(ref)
    trial = study.ask()
    try:
        return _ticket(study, trial, config, owner)
    except BaseException as exc:
        _fail_quietly(ref, trial.number, exc)
        raise


def _ticket(study: optuna.Study, trial: optuna.Trial, config: SearchConfig,
            owner: str | None) -> TrialTicket:
    if owner is not None:
        trial.set_user_attr(UserAttr.OWNER, owner)
    study.sampler = make_sampler(config, number=trial.number)  # seeded for this trial
    input_shape, num_classes = config.data_shape()

    def suggest(name: str, choices: tuple[Choice, ...]) -> Choice:
        value = trial.suggest_categorical(name, choices)
        assert value is not None  # the choices hold no None
        return value

    with quiet():
        params = sample_params(config.space, suggest)
    spec = decode(config.space, params, input_shape=input_shape, num_classes=num_classes)
    key = arch_key(spec, config)
    trial.set_user_attr(UserAttr.ARCH_KEY, key)
    done = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
    return TrialTicket(
        number=trial.number, params=params, spec_json=spec.to_json(),
        skip=pre_verdict(trials=done, number=trial.number, key=key, spec=spec, config=config),
        baseline=baseline(trials=done, spec=spec, config=config),
    )


def _fail_quietly(ref: StudyRef, number: int, error: BaseException) -> None:
    """Tell trial ``number`` FAIL because of ``error``; a failure to do so (the storage is gone)
    must not hide ``error`` itself."""
    reason = " ".join(f"{type(error).__name__}: {error}".split())[:400]
    with contextlib.suppress(Exception):  # the caller re-raises the error that matters
        fail(ref=ref, number=number, reason=reason)


def next_trial(*, ref: StudyRef, config: SearchConfig, owner: str | None = None) -> NextTrial:
    """Ask until a trial needs training; duplicates and refusals met on the way are told to the
    study and returned in ``skipped``. ``ticket`` is None (with the reason in ``finished``) when
    every architecture of the space is finished or the sampler proposed only finished ones
    ``MAX_SKIPS_IN_A_ROW`` times in a row. ``owner`` goes to ``ask``."""
    skipped: list[TrialTicket] = []
    distinct = count_architectures(config.space)
    for _ in range(MAX_SKIPS_IN_A_ROW):
        if config.skip_duplicates:
            done = finished_keys(open_study(ref).get_trials(deepcopy=False))
            if done >= distinct:
                return NextTrial(ticket=None, skipped=tuple(skipped), finished=(
                    f"all {distinct} distinct architectures of the space are done; "
                    "widen the space to search further"))
        ticket = ask(ref=ref, config=config, owner=owner)
        if ticket.skip is None:
            return NextTrial(ticket=ticket, skipped=tuple(skipped))
        try:
            tell(ref=ref, outcome=ticket.skip)
        except BaseException as exc:
            _fail_quietly(ref, ticket.number, exc)
            raise
        skipped.append(ticket)
    return NextTrial(ticket=None, skipped=tuple(skipped), finished=(
        f"the sampler proposed {MAX_SKIPS_IN_A_ROW} finished architectures in a row (the space "
        f"has {distinct}); nothing new is left to try, widen the space to search further"))


def _init_seed(config: SearchConfig, number: int) -> int:
    seed = trial_seed(config, number)
    return config.train.seed * 7919 + number if seed is None else seed


def run_ticket(
    *,
    ticket: TrialTicket,
    config: SearchConfig,
    splits: Splits,
    device: str = "cpu",
    on_epoch: Callable[[EpochReport], bool] | None = None,
) -> TrialOutcome:
    """Build, train (and for low-rank layers prune and fine-tune) the ticket's architecture.

    The initial weights are seeded from (config, trial number), so a seeded search repeats.
    State ``stopped`` when ``on_epoch`` returned False, ``stopped_early`` when the early-stopping
    rule stopped it (the values are then partial). A ticket with a ``skip`` is not trained: its
    outcome is returned as it is.
    """
    if ticket.skip is not None:
        return ticket.skip
    spec = ArchSpec.from_json(ticket.spec_json)
    if spec.input_shape != splits.input_shape or spec.num_classes != splits.num_classes:
        raise SearchError(
            f"splits: the data has input {splits.input_shape} and {splits.num_classes} classes, "
            f"trial {ticket.number} was decoded for {spec.input_shape} and {spec.num_classes}; "
            "set the config's input_shape/num_classes from this dataset"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_init_seed(config, ticket.number))
        model = build_model(spec)
    watch = Watch(config.early_stopping, ticket.baseline)

    def each_epoch(report: EpochReport) -> bool:
        go = watch.keep_going(epoch=report.epoch, phase=report.phase,
                              accuracy=report.val_accuracy)
        return (on_epoch is None or on_epoch(report) is not False) and go

    result = train(model, spec, splits, config.train, device=device, on_epoch=each_epoch)
    preprocess = splits.preprocess()
    excess = None if config.max_params is None else result.params - config.max_params
    values: tuple[float, ...] = (result.val_accuracy, float(result.params))
    if "macs" in config.objectives:
        values = (*values, float(result.macs))
    state: OutcomeState = "stopped" if result.stopped else "complete"
    if watch.stopped_epoch is not None:
        state = "stopped_early"
    return TrialOutcome(
        number=ticket.number, state=state, values=values,
        val_accuracy=result.val_accuracy, test_accuracy=result.test_accuracy,
        params=result.params, macs=result.macs, feasible=excess is None or excess <= 0,
        train_seconds=result.train_seconds, spec_json=result.spec.to_json(),
        weights=to_safetensors(result.model.cpu(), result.spec, preprocess=preprocess),
        excess=excess, preprocess_json=preprocess.to_json(),
        reason=watch.reason(), stopped_epoch=watch.stopped_epoch, lost_to=watch.lost_to,
        curve=tuple(watch.curve),
    )


def tell(*, ref: StudyRef, outcome: TrialOutcome) -> None:
    """Store the outcome on its trial and finish it: ``complete`` with the objective values,
    ``stopped`` as pruned (never on a front). ``stopped_early`` (with its partial values),
    ``duplicate`` (with the earlier trial's values) and ``refused`` (accuracy 0, infeasible) are
    told COMPLETE with an ``outcome`` attribute: every sampler learns from them, none meets a
    pruned multi-objective trial, and none is ever on a front. A trial already finished is left
    alone."""
    study = open_study(ref)
    tid = trial_id(ref, outcome.number)
    storage = get_storage(ref.storage_url)
    if storage.get_trial(tid).state.is_finished():
        return
    attrs = {
        UserAttr.VAL_ACCURACY: outcome.val_accuracy, UserAttr.TEST_ACCURACY: outcome.test_accuracy,
        UserAttr.PARAMS: outcome.params, UserAttr.MACS: outcome.macs,
        UserAttr.FEASIBLE: outcome.feasible,
        UserAttr.TRAIN_SECONDS: outcome.train_seconds, UserAttr.SPEC: outcome.spec_json,
        UserAttr.CURVE: list(outcome.curve),
    }
    if outcome.state in ("stopped_early", "duplicate", "refused"):
        attrs[UserAttr.OUTCOME] = outcome.state
    optional = {UserAttr.REASON: outcome.reason, UserAttr.DUPLICATE_OF: outcome.duplicate_of,
                UserAttr.STOPPED_EPOCH: outcome.stopped_epoch, UserAttr.LOST_TO: outcome.lost_to}
    attrs.update({key: value for key, value in optional.items() if value is not None})
    for key, value in attrs.items():
        storage.set_trial_user_attr(tid, key, value)
    if outcome.excess is not None:  # where TPE and NSGA-II look for constraint values
        optuna.Trial(study, tid).set_constraint(MAX_PARAMS_CONSTRAINT, float(outcome.excess))
    with quiet():
        if outcome.state != "stopped":
            study.tell(outcome.number, list(outcome.values), skip_if_finished=True)
        else:
            study.tell(outcome.number, state=TrialState.PRUNED, skip_if_finished=True)


def fail(*, ref: StudyRef, number: int, reason: str) -> None:
    """Mark trial ``number`` failed with ``reason`` (left alone if it already finished)."""
    study = open_study(ref)
    tid = trial_id(ref, number)
    storage = get_storage(ref.storage_url)
    if storage.get_trial(tid).state.is_finished():
        return
    storage.set_trial_user_attr(tid, UserAttr.REASON, reason)
    with quiet():
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)


def fail_running(*, ref: StudyRef, reason: str, owner: str | None = None) -> list[int]:
    """Fail the study's RUNNING trials (only those ``ask`` gave ``owner``, when given): what a
    process killed mid-trial left behind, as a resumed search finds it. Returns their numbers."""
    running = [
        t.number for t in open_study(ref).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if owner is None or t.user_attrs.get(UserAttr.OWNER) == owner
    ]
    for number in running:
        fail(ref=ref, number=number, reason=reason)
    return running


def retry(*, ref: StudyRef, number: int) -> None:
    """Enqueue trial ``number``'s parameters again: the next ``ask`` returns them."""
    study = open_study(ref)
    params = get_storage(ref.storage_url).get_trial(trial_id(ref, number)).params
    study.enqueue_trial(dict(params), user_attrs={UserAttr.RETRY_OF: number})


def study_exists(*, ref: StudyRef) -> bool:
    """Whether the storage holds the study (connecting to a SQLite URL creates its file)."""
    try:
        get_storage(ref.storage_url).get_study_id_from_name(ref.study_name)
    except KeyError:
        return False
    return True


def study_config(*, ref: StudyRef) -> dict[str, Any] | None:
    """The config (``SearchConfig.to_dict()``) the study was created with; None for a study
    ``create_study`` did not make."""
    raw = open_study(ref).user_attrs.get(_CONFIG_ATTR)
    return None if raw is None else dict(json.loads(raw))


def trials(*, ref: StudyRef) -> list[TrialRecord]:
    """Every trial of the study, by number."""
    return [to_record(t) for t in open_study(ref).get_trials(deepcopy=False)]


def front(*, ref: StudyRef, config: SearchConfig) -> list[FrontMember]:
    """The complete, feasible, non-dominated trials, by parameter count (then accuracy)."""
    done = {
        r.number: r for r in trials(ref=ref)
        if r.state == "complete" and r.feasible and r.values is not None
    }
    points = [
        FrontPoint(number=r.number, accuracy=r.val_accuracy or 0.0, params=r.params or 0,
                   macs=r.macs if "macs" in config.objectives else None)
        for r in done.values()
    ]
    members = []
    for point in non_dominated(points):
        r = done[point.number]
        assert r.values is not None and r.spec_json is not None  # complete trials carry both
        members.append(FrontMember(
            number=r.number, trial_params=r.trial_params, values=r.values,
            val_accuracy=point.accuracy, test_accuracy=r.test_accuracy or 0.0,
            params=point.params, macs=r.macs or 0, train_seconds=r.train_seconds or 0.0,
            spec_json=r.spec_json,
        ))
    return members
