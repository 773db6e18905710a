"""The study driver on in-memory storage: seeds, constraints, warm start, fail/retry, fronts."""

from __future__ import annotations

import json
from typing import Any

import optuna
import pytest

from models import count_params
from models.serialize import from_safetensors
from models.spec import ArchSpec
from search import engine
from search.config import SearchConfig, parse_config
from search.datasets import Splits
from search.errors import SearchError, SpaceError
from search.records import StudyRef, TrialOutcome
from search.study import MEMORY_URL, get_storage
from tests.search.conftest import NewRef

TINY_SPACE = {"depth": [1, 2], "multipliers": [0.25, 0.5], "kinds": ["full", "bilinear"],
              "train": {"epochs": 1, "finetune_epochs": 1, "batch_size": 128}}


def _config(**overrides: Any) -> SearchConfig:
    return parse_config({"space": TINY_SPACE, "n_trials": 6, "seed": 3, **overrides})


def _run(ref: StudyRef, config: SearchConfig, splits: Splits, n: int) -> list[TrialOutcome]:
    outcomes = []
    for _ in range(n):
        ticket = engine.ask(ref=ref, config=config)
        outcome = engine.run_ticket(ticket=ticket, config=config, splits=splits)
        engine.tell(ref=ref, outcome=outcome)
        outcomes.append(outcome)
    return outcomes


def _fake(number: int, *, accuracy: float, params: int, max_params: int | None = None
          ) -> TrialOutcome:
    excess = None if max_params is None else params - max_params
    return TrialOutcome(number=number, state="complete", values=(accuracy, float(params)),
                        val_accuracy=accuracy, test_accuracy=accuracy, params=params, macs=params,
                        feasible=excess is None or excess <= 0, train_seconds=0.1,
                        spec_json="{}", excess=excess)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_same_seed_same_trials_and_values(splits: Splits, sampler: str, new_ref: NewRef) -> None:
    config = _config(sampler=sampler)
    runs = []
    for _ in range(2):
        ref = new_ref()
        engine.create_study(ref=ref, config=config)
        _run(ref, config, splits, 5)
        runs.append([(r.trial_params, r.values) for r in engine.trials(ref=ref)])
    assert len(runs[0]) == 5
    assert runs[0] == runs[1]
    assert len({json.dumps(p, sort_keys=True) for p, _ in runs[0]}) > 1  # not one trial 5 times


def test_outcome_is_measured_on_the_pruned_architecture(splits: Splits, new_ref: NewRef) -> None:
    config = _config(space={**TINY_SPACE, "kinds": ["lowrank"], "depth": 1})
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    (outcome,) = _run(ref, config, splits, 1)
    spec = ArchSpec.from_json(outcome.spec_json)
    assert outcome.params == count_params(spec) and outcome.values[1] == outcome.params
    assert spec.layers[0].rank is not None  # pruned to its kept rank
    assert outcome.weights is not None
    model, loaded = from_safetensors(outcome.weights)
    assert loaded == spec and sum(p.numel() for p in model.parameters()) == outcome.params
    (record,) = engine.trials(ref=ref)
    assert (record.state, record.params, record.spec_json) == ("complete", outcome.params,
                                                              outcome.spec_json)
    assert record.test_accuracy == outcome.test_accuracy and record.feasible is True


def test_max_params_is_a_constraint_not_a_penalty(splits: Splits, new_ref: NewRef) -> None:
    small = {"depth": 1, "layers.0.kind": "bilinear", "layers.0.multiplier": 0.25}
    large = {"depth": 1, "layers.0.kind": "full", "layers.0.multiplier": 0.5}
    config = _config(max_params=20_000, warm_start=[large, small])
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    outcomes = _run(ref, config, splits, 2)
    # Warm-start trials come first, in order; the full layer (64 -> 512) is over the limit.
    assert [engine.trials(ref=ref)[i].trial_params for i in (0, 1)] == [large, small]
    assert [o.feasible for o in outcomes] == [False, True]
    assert outcomes[0].params > 20_000 >= outcomes[1].params
    # The large one is refused before training: its count is exact (no low-rank layer).
    assert (outcomes[0].state, outcomes[0].params, outcomes[0].train_seconds) == (
        "refused", 38_410, 0.0)
    assert outcomes[0].weights is None and outcomes[0].reason == (
        "not trained: it has at least 38410 parameters, over max_params=20000")
    assert engine.trials(ref=ref)[0].state == "refused"
    assert [m.number for m in engine.front(ref=ref, config=config)] == [1]
    # The constraint value (params - max_params) is on the trial, where TPE and NSGA-II read it.
    study = optuna.load_study(study_name=ref.study_name, storage=get_storage(ref.storage_url))
    assert [t.constraints for t in study.trials] == [
        {"max_params": float(o.params - 20_000)} for o in outcomes
    ]


def test_front_is_complete_feasible_and_non_dominated(new_ref: NewRef) -> None:
    config = _config(max_params=5000)  # the fakes below judge feasibility at 1000 themselves
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    for _ in range(6):
        engine.ask(ref=ref, config=config)
    engine.tell(ref=ref, outcome=_fake(0, accuracy=0.9, params=900, max_params=1000))
    engine.tell(ref=ref, outcome=_fake(1, accuracy=0.8, params=100, max_params=1000))
    engine.tell(ref=ref, outcome=_fake(2, accuracy=0.7, params=500, max_params=1000))  # dominated
    engine.tell(ref=ref, outcome=_fake(3, accuracy=0.99, params=5000, max_params=1000))
    engine.fail(ref=ref, number=4, reason="out of memory")
    stopped = _fake(5, accuracy=0.95, params=50, max_params=1000)
    engine.tell(ref=ref, outcome=TrialOutcome(**{**stopped.__dict__, "state": "stopped"}))
    members = engine.front(ref=ref, config=config)
    assert [(m.number, m.val_accuracy, m.params) for m in members] == [(1, 0.8, 100),
                                                                        (0, 0.9, 900)]
    states = [(r.number, r.state, r.reason) for r in engine.trials(ref=ref)]
    assert states == [(0, "complete", None), (1, "complete", None), (2, "complete", None),
                      (3, "complete", None), (4, "failed", "out of memory"), (5, "stopped", None)]
    # Telling or failing a finished trial changes nothing.
    engine.fail(ref=ref, number=0, reason="late")
    assert engine.trials(ref=ref)[0].state == "complete"


def test_retry_enqueues_the_same_parameters(new_ref: NewRef) -> None:
    config = _config()
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    first = engine.ask(ref=ref, config=config)
    engine.fail(ref=ref, number=first.number, reason="worker died")
    engine.retry(ref=ref, number=first.number)
    again = engine.ask(ref=ref, config=config)
    assert again.number == first.number + 1
    assert (again.params, again.spec_json) == (first.params, first.spec_json)


def test_create_study_is_idempotent_and_checks_objectives(new_ref: NewRef) -> None:
    ref = new_ref()
    config = _config(warm_start=[{"depth": 1, "layers.0.kind": "full",
                                  "layers.0.multiplier": 0.25}])
    engine.create_study(ref=ref, config=config)
    engine.create_study(ref=ref, config=config)  # warm start is enqueued once
    assert [r.state for r in engine.trials(ref=ref)] == ["waiting"]
    study = optuna.load_study(study_name=ref.study_name, storage=get_storage(ref.storage_url))
    assert study.metric_names == ["accuracy", "params"]
    with pytest.raises(SearchError) as info:
        engine.create_study(ref=ref, config=_config(objectives=["accuracy", "params", "macs"]))
    assert str(info.value) == (
        f"objectives: study {ref.study_name!r} already exists with 2 objectives, config asks "
        "for ['accuracy', 'params', 'macs']; use another study name"
    )
    with pytest.raises(SearchError, match=r"^study_name: no study 'nope' in memory://"):
        engine.ask(ref=StudyRef(storage_url=MEMORY_URL, study_name="nope"), config=config)


def test_three_objectives_add_macs(splits: Splits, new_ref: NewRef) -> None:
    config = _config(objectives=["accuracy", "params", "macs"])
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    (outcome,) = _run(ref, config, splits, 1)
    assert outcome.values == (outcome.val_accuracy, float(outcome.params), float(outcome.macs))
    (member,) = engine.front(ref=ref, config=config)
    assert member.values == outcome.values
    # Largest: full 64 -> 512 -> 512 -> 10 (multiplier 0.5 of 16 channels on 8 x 8).
    params = (64 * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10)
    macs = 64 * 512 + 512 * 512 + 512 * 10
    assert engine.reference_point(config) == [0.0, float(params), float(macs)]


def test_reference_point_uses_max_params_else_the_largest_architecture() -> None:
    # Largest: depth 2, full 64 -> 128 -> 128, full classifier 128 -> 10 (multiplier 0.5 of 16).
    expected = (64 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10)
    config = _config(space={**TINY_SPACE, "base_channels": 4})
    assert engine.reference_point(config) == [0.0, float(expected)]
    assert engine.reference_point(_config(max_params=7777)) == [0.0, 7777.0]


def test_shape_errors() -> None:
    config = parse_config({"dataset": "npz", "space": TINY_SPACE})
    with pytest.raises(SpaceError, match=r"^input_shape: missing; dataset 'npz' has no fixed"):
        engine.reference_point(config)
    with pytest.raises(SpaceError, match=r"^warm_start\[0\].params.depth: got 5; allowed: 1, 2"):
        _config(warm_start=[{"depth": 5}])


def test_an_error_after_ask_fails_the_trial_it_was_handed(monkeypatch: pytest.MonkeyPatch,
                                                          new_ref: NewRef) -> None:
    ref, config = new_ref(), _config()
    engine.create_study(ref=ref, config=config)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise SpaceError("layers[0]", "cannot decode")

    monkeypatch.setattr(engine, "decode", broken)
    with pytest.raises(SpaceError):
        engine.ask(ref=ref, config=config)
    (record,) = engine.trials(ref=ref)
    assert (record.state, record.reason) == ("failed", "SpaceError: layers[0]: cannot decode")


def test_fail_running_fails_running_trials_of_one_owner_or_all(new_ref: NewRef) -> None:
    ref, config = new_ref(), _config()
    engine.create_study(ref=ref, config=config)
    mine = engine.ask(ref=ref, config=config, owner="run-a").number
    theirs = engine.ask(ref=ref, config=config, owner="run-b").number
    anyone = engine.ask(ref=ref, config=config).number
    assert engine.fail_running(ref=ref, owner="run-a", reason="gone") == [mine]
    assert [r.state for r in engine.trials(ref=ref)] == ["failed", "running", "running"]
    assert engine.fail_running(ref=ref, reason="gone") == [theirs, anyone]
    assert {r.state for r in engine.trials(ref=ref)} == {"failed"}
    assert engine.study_config(ref=ref) == config.to_dict()
