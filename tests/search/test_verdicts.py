"""Duplicates, refusals and the size of a space: what is decided before a trial trains."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from models import count_params
from search import engine
from search.config import SearchConfig, parse_config
from search.datasets import Splits
from search.errors import SpaceError
from search.records import StudyRef
from search.space import parse_space
from search.space.extent import (
    _cheapest,
    count_architectures,
    iter_architectures,
    min_params,
    smallest_params,
)
from search.study import get_storage
from service.cli import app
from tests.search.conftest import NewRef

FOUR = {"depth": [1], "kinds": ["full", "bilinear"], "multipliers": [0.25, 0.5],
        "train": {"epochs": 1, "finetune_epochs": 0, "batch_size": 256}}
SPACES: list[dict[str, Any]] = [
    FOUR,
    {"depth": [1, 2, 3], "kinds": ["full", "bilinear", "lowrank"], "multipliers": [0.25, 1, 2],
     "lowrank": {"energy_thresholds": [0.01, 0.05]}},
    {"backbone": "cnn", "depth": [0, 1], "kinds": ["full", "lowrank"], "multipliers": [0.5, 1],
     "lowrank": {"decompositions": ["channel", "spatial"]},
     "convs": [{"kinds": ["full", "lowrank"], "multipliers": [1, 2], "pool": True}]},
]


@pytest.mark.parametrize("data", SPACES)
def test_count_and_smallest_match_enumeration(data: dict[str, Any]) -> None:
    space = parse_space(data)
    specs = list(iter_architectures(space, input_shape=(1, 8, 8), num_classes=10))
    assert len(specs) == len({s.to_json() for s in specs}) == count_architectures(space)
    fewest = min(min_params(s) for s in specs)
    assert smallest_params(space, input_shape=(1, 8, 8), num_classes=10) == fewest
    assert _cheapest(space, input_shape=(1, 8, 8), num_classes=10) == fewest  # the fallback
    assert all(min_params(s) <= count_params(s) for s in specs)
    assert any(min_params(s) < count_params(s) for s in specs) == any(
        "lowrank" in s.to_json() for s in specs)


def test_max_params_below_the_smallest_architecture_is_refused(new_ref: NewRef) -> None:
    config = parse_config({"space": FOUR, "max_params": 3000})
    message = ("max_params: got 3000; the smallest architecture of the space has 3338 "
               "parameters: raise max_params to at least 3338 or add smaller choices to the space")
    with pytest.raises(SpaceError) as caught:
        engine.reference_point(config)
    assert str(caught.value) == message
    with pytest.raises(SpaceError):
        engine.create_study(ref=new_ref(), config=config)
    engine.reference_point(parse_config({"space": FOUR, "max_params": 3338}))  # the bound is ok


def test_cli_refuses_max_params_below_the_space(tmp_path: Any) -> None:
    space = tmp_path / "space.json"
    space.write_text(__import__("json").dumps(FOUR))
    result = CliRunner().invoke(app, ["search", "--space", str(space), "--max-params", "100",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "error: --max-params: got 100; the smallest architecture of the space has 3338" in (
        result.output)
    assert not (tmp_path / "run").exists()


def _search(config: SearchConfig, splits: Splits, ref: StudyRef) -> tuple[int, str | None]:
    trained = 0
    while trained < config.n_trials:
        found = engine.next_trial(ref=ref, config=config)
        if found.ticket is None:
            return trained, found.finished
        engine.tell(ref=ref, outcome=engine.run_ticket(ticket=found.ticket, config=config,
                                                       splits=splits))
        trained += 1
    return trained, None


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_duplicates_are_not_trained_and_a_small_space_ends(splits: Splits, sampler: str,
                                                           new_ref: NewRef) -> None:
    config = parse_config({"space": FOUR, "n_trials": 6, "seed": 2, "sampler": sampler})
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    trained, finished = _search(config, splits, ref)
    assert trained == 4
    assert finished == ("all 4 distinct architectures of the space are done; widen the space "
                        "to search further")
    records = engine.trials(ref=ref)
    originals = {r.number: r for r in records if r.state == "complete"}
    assert len(originals) == 4
    assert len({r.spec_json for r in originals.values()}) == 4
    for r in records:
        if r.state == "duplicate":
            original = originals[r.duplicate_of]  # type: ignore[index]
            assert r.trial_params == original.trial_params
            assert (r.values, r.val_accuracy, r.params) == (original.values,
                                                            original.val_accuracy,
                                                            original.params)
            assert r.train_seconds == 0.0
            assert r.reason == (f"same architecture and training config as trial "
                                f"{original.number} (complete); not trained again")
    front = engine.front(ref=ref, config=config)
    assert len({m.spec_json for m in front}) == len(front)
    assert all(m.number in originals for m in front)
    # The sampler saw the duplicates as complete trials with the earlier values.
    study = optuna.load_study(study_name=ref.study_name, storage=get_storage(ref.storage_url))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_skip_duplicates_off_trains_again(splits: Splits, new_ref: NewRef) -> None:
    config = parse_config({"space": FOUR, "n_trials": 8, "seed": 2, "sampler": "random",
                           "skip_duplicates": False})
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    trained, finished = _search(config, splits, ref)
    assert (trained, finished) == (8, None)
    assert {r.state for r in engine.trials(ref=ref)} == {"complete"}


def test_a_retried_architecture_is_not_a_duplicate_of_its_failure(splits: Splits,
                                                                  new_ref: NewRef) -> None:
    config = parse_config({"space": FOUR, "n_trials": 4, "seed": 2})
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    first = engine.next_trial(ref=ref, config=config).ticket
    assert first is not None
    engine.fail(ref=ref, number=first.number, reason="lost")
    engine.retry(ref=ref, number=first.number)
    again = engine.next_trial(ref=ref, config=config).ticket
    assert again is not None and again.skip is None and again.params == first.params
