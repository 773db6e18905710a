"""Pareto-aware early stopping: settings, the rule on real training, samplers that keep going."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from search import engine
from search.config import parse_config
from search.datasets import Splits
from search.early_stop import EarlyStopping, Finished, choose_baseline
from search.errors import SpaceError
from search.records import StudyRef, TrialOutcome
from search.study import UserAttr, get_storage
from service.cli import app
from tests.search.conftest import NewRef

SPACE = {"depth": [1, 2], "kinds": ["full", "bilinear"], "multipliers": [0.25, 0.5, 1, 2],
         "train": {"epochs": 4, "finetune_epochs": 0, "batch_size": 256}}

SMALL = {**SPACE, "multipliers": [0.25, 0.5]}  # what the tests that train use


@pytest.mark.parametrize(("data", "message"), [
    ({"margin": -0.1}, "early_stopping.margin: got -0.1; must be a number in [0, 1] (accuracy "
                       "points below the neighbour)"),
    ({"margin": 2}, "early_stopping.margin: got 2; must be a number in [0, 1] (accuracy points "
                    "below the neighbour)"),
    ({"checkpoints": [2, 5]}, "early_stopping.checkpoints[1]: got 5; must be an epoch in [1, 4] "
                              "(the trial trains 4 epochs)"),
    ({"checkpoints": [0]}, "early_stopping.checkpoints[0]: got 0; must be an epoch in [1, 4] "
                           "(the trial trains 4 epochs)"),
    ({"enabled": "yes"}, "early_stopping.enabled: got 'yes'; must be true or false"),
    ({"patience": 3}, "early_stopping.patience: unknown field; allowed: enabled, checkpoints, "
                      "margin"),
])
def test_settings_out_of_range_name_field_and_range(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError) as caught:
        parse_config({"space": SPACE, "early_stopping": data})
    assert str(caught.value) == message


def test_settings_round_trip() -> None:
    config = parse_config({"space": SPACE, "early_stopping": {"checkpoints": [3, 1],
                                                               "margin": 0.1}})
    assert config.early_stopping == EarlyStopping(enabled=True, checkpoints=(1, 3), margin=0.1)
    assert parse_config(config.to_dict()) == config
    assert parse_config({"space": SPACE, "early_stopping": False}).early_stopping.enabled is False
    # the default checkpoints: from a third of training on, the last epoch excluded
    assert EarlyStopping().epochs_checked(12) == (4, 5, 6, 7, 8, 9, 10, 11)
    assert EarlyStopping(checkpoints=(2, 4)).epochs_checked(4) == (2,)


@pytest.mark.parametrize(("flags", "message"), [
    (["--margin", "-1"], "error: --margin: got -1.0; must be a number in [0, 1]"),
    (["--checkpoints", "2,9"], "error: --checkpoints: got 9; must be an epoch in "
                               "[1, 4] (the trial trains 4 epochs)"),
    (["--checkpoints", "two"], "error: --checkpoints: got 'two'; expected epochs separated by "
                               "commas, e.g. 4,8"),
])
def test_cli_bad_settings_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    result = CliRunner().invoke(app, ["search", "--space", str(space), *flags,
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert message in result.output


def test_choose_baseline_is_the_staircase_neighbour() -> None:
    finished = [Finished(number=0, accuracy=0.9, params=500, curve=(0.9,)),
                Finished(number=1, accuracy=0.8, params=100, curve=(0.8,)),
                Finished(number=2, accuracy=0.95, params=900, curve=(0.95,)),
                Finished(number=3, accuracy=0.9, params=400, curve=(0.9,))]
    assert choose_baseline(finished, min_params=50) is None
    assert choose_baseline(finished, min_params=100).number == 1  # type: ignore[union-attr]
    assert choose_baseline(finished, min_params=600).number == 3  # type: ignore[union-attr]
    assert choose_baseline(finished, min_params=10_000).number == 2  # type: ignore[union-attr]


def _told(ref: StudyRef, number: int, *, accuracy: float, params: int,
          curve: tuple[float, ...], state: str = "complete") -> None:
    engine.tell(ref=ref, outcome=TrialOutcome(
        number=number, state=state, values=(accuracy, float(params)),  # type: ignore[arg-type]
        val_accuracy=accuracy, test_accuracy=accuracy, params=params, macs=params,
        feasible=True, train_seconds=0.1, spec_json="{}", curve=curve))


def test_a_trial_behind_its_neighbour_stops_at_the_checkpoint(splits: Splits,
                                                              new_ref: NewRef) -> None:
    config = parse_config({"space": SMALL, "seed": 0, "early_stopping": {"checkpoints": [2],
                                                                         "margin": 0.05}})
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    first = engine.ask(ref=ref, config=config)
    # A (made-up) neighbour with fewer parameters than anything in the space and perfect accuracy
    _told(ref, first.number, accuracy=1.0, params=10, curve=(1.0, 1.0, 1.0, 1.0))
    ticket = engine.ask(ref=ref, config=config)
    assert ticket.baseline is not None and ticket.baseline.number == first.number
    epochs: list[int] = []
    outcome = engine.run_ticket(ticket=ticket, config=config, splits=splits,
                                on_epoch=lambda r: epochs.append(r.epoch) is None)
    assert epochs == [1, 2]  # stopped after the checkpoint, not trained to the end
    assert (outcome.state, outcome.stopped_epoch, outcome.lost_to) == (
        "stopped_early", 2, first.number)
    assert len(outcome.curve) == 2 and outcome.val_accuracy < 0.95
    assert outcome.reason == (
        f"stopped early at epoch 2: validation accuracy {outcome.curve[1]:.4f} < 1.0000 - 0.05 "
        f"(trial {first.number}, which has no more parameters, at the same epoch)")
    engine.tell(ref=ref, outcome=outcome)
    record = engine.trials(ref=ref)[ticket.number]
    assert (record.state, record.stopped_epoch, record.lost_to) == (
        "stopped_early", 2, first.number)
    assert record.curve == outcome.curve
    assert [m.number for m in engine.front(ref=ref, config=config)] == [first.number]
    frozen = get_storage(ref.storage_url).get_all_trials(
        get_storage(ref.storage_url).get_study_id_from_name(ref.study_name))[ticket.number]
    assert frozen.state == optuna.trial.TrialState.COMPLETE  # told with its partial values
    assert frozen.user_attrs[UserAttr.OUTCOME] == "stopped_early"


def test_without_a_neighbour_or_when_off_a_trial_trains_to_the_end(splits: Splits,
                                                                   new_ref: NewRef) -> None:
    for rule in ({"checkpoints": [1], "margin": 0.0}, False):
        config = parse_config({"space": SMALL, "seed": 0, "early_stopping": rule})
        ref = new_ref()
        engine.create_study(ref=ref, config=config)
        first = engine.ask(ref=ref, config=config)
        # the only finished trial has MORE parameters than anything in the space
        _told(ref, first.number, accuracy=1.0, params=10**9, curve=(1.0,) * 4)
        ticket = engine.ask(ref=ref, config=config)
        assert ticket.baseline is None
        outcome = engine.run_ticket(ticket=ticket, config=config, splits=splits)
        assert outcome.state == "complete" and len(outcome.curve) == 4


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_samplers_keep_proposing_after_many_stopped_trials(sampler: str, new_ref: NewRef) -> None:
    config = parse_config({"space": SPACE, "n_trials": 80, "seed": 1, "sampler": sampler,
                           "skip_duplicates": False})
    ref = new_ref()
    engine.create_study(ref=ref, config=config)
    proposals = []
    for i in range(60):
        ticket = engine.ask(ref=ref, config=config)
        proposals.append(json.dumps(ticket.params, sort_keys=True))
        params = 1000 + 37 * i
        if i % 6 == 0:
            _told(ref, ticket.number, accuracy=0.9, params=params, curve=(0.9,) * 4)
        else:  # most trials stop early, told with their partial accuracy
            _told(ref, ticket.number, accuracy=0.3, params=params, curve=(0.2, 0.3),
                  state="stopped_early")
    records = engine.trials(ref=ref)
    assert sum(r.state == "stopped_early" for r in records) == 50
    assert len(set(proposals[-20:])) >= 5  # still exploring, not stuck on one proposal
