"""`paretonas search`: files written, bad arguments (exit 2, one line), Ctrl-C in a real process."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from search.pareto import FrontPoint, non_dominated
from service.cli import app

TINY_SPACE = {"depth": [1, 2], "multipliers": [0.25, 0.5], "kinds": ["full", "bilinear"],
              "train": {"epochs": 1, "finetune_epochs": 0, "batch_size": 256}}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.json"
    path.write_text(json.dumps(TINY_SPACE))
    return path


def test_search_writes_front_trials_and_plot(tmp_path: Path, space_file: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["search", "--trials", "4", "--space", str(space_file),
                                      "--seed", "1", "--max-params", "20000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["number"] for row in rows] == [str(i) for i in range(len(rows))]
    # --trials counts trained trials; proposals over max_params are refused before training
    trained = [r for r in rows if r["state"] == "complete"]
    assert len(trained) == 4
    refused = [r for r in rows if r["state"] == "refused"]
    assert refused and all(int(r["params"]) > 20000 and r["train_seconds"] == "0.0"
                           and "over max_params=20000" in r["reason"] for r in refused)
    assert {r["state"] for r in rows} <= {"complete", "refused", "duplicate"}
    # front.json holds exactly the non-dominated feasible trials of trials.csv.
    feasible = [FrontPoint(number=int(r["number"]), accuracy=float(r["val_accuracy"]),
                           params=int(r["params"])) for r in trained if r["feasible"] == "True"]
    assert all((int(r["params"]) <= 20000) == (r["feasible"] == "True") for r in trained)
    document = json.loads((out / "front.json").read_text())
    assert [m["number"] for m in document["front"]] == [p.number for p in non_dominated(feasible)]
    assert document["trials_done"] == 4 and document["interrupted"] is False
    assert document["reference_point"] == [0.0, 20000.0]
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pareto front" in result.stdout
    _check_front_models(out, document, tmp_path)
    # A warm start from that front runs its architectures first.
    again = CliRunner().invoke(app, ["search", "--trials", "1", "--space", str(space_file),
                                     "--warm-start", str(out / "front.json"),
                                     "--out", str(tmp_path / "warm"), "--onnx"])
    assert again.exit_code == 0, again.output
    with (tmp_path / "warm" / "trials.csv").open() as handle:
        warm = list(csv.DictReader(handle))
    assert json.loads(warm[0]["trial_params"]) == document["front"][0]["trial_params"]
    # the rest of the front stays enqueued for the next trials
    assert [r["state"] for r in warm] == ["complete"] + ["waiting"] * (len(document["front"]) - 1)
    # --onnx: the one front member also as ONNX; export --run copies that file as it is.
    assert sorted(p.name for p in (tmp_path / "warm" / "models").iterdir()) == [
        "trial-0.onnx", "trial-0.safetensors"]
    copied = tmp_path / "copied.onnx"
    result = CliRunner().invoke(app, ["export", "--run", str(tmp_path / "warm"), "--trial", "0",
                                      "--format", "onnx", "--out", str(copied)])
    assert result.exit_code == 0, result.output
    assert copied.read_bytes() == (tmp_path / "warm" / "models" / "trial-0.onnx").read_bytes()


def _check_front_models(out: Path, document: dict[str, Any], tmp_path: Path) -> None:
    """models/ holds exactly the front members' safetensors; each rebuilds to its reported
    parameter count; export --run writes them out, as they are or as ONNX."""
    from models.export import onnx_values
    from models.serialize import from_safetensors

    numbers = [m["number"] for m in document["front"]]
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted(
        f"trial-{n}.safetensors" for n in numbers)
    for member in document["front"]:
        model, _ = from_safetensors((out / "models" / f"trial-{member['number']}.safetensors")
                                    .read_bytes())
        assert sum(p.numel() for p in model.parameters()) == member["params"]
        assert model.info.dataset == "digits" and model.info.input_shape == (1, 8, 8)
    first = document["front"][0]
    for fmt in ("safetensors", "onnx"):
        target = tmp_path / f"exported.{fmt}"
        result = CliRunner().invoke(app, ["export", "--run", str(out), "--trial",
                                          str(first["number"]), "--format", fmt,
                                          "--out", str(target)])
        assert result.exit_code == 0, result.output
    assert target.with_suffix(".safetensors").read_bytes() == (
        out / "models" / f"trial-{first['number']}.safetensors").read_bytes()
    assert onnx_values(target.read_bytes()).parameters == first["params"]
    absent = max(numbers) + 100
    result = CliRunner().invoke(app, ["export", "--run", str(out), "--trial", str(absent),
                                      "--out", str(tmp_path / "x.safetensors")])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: --run: {str(out / 'models' / f'trial-{absent}.safetensors')!r} does not exist; "
        f"this folder holds {', '.join(sorted(f'trial-{n}.safetensors' for n in numbers))} "
        "(only front members are written, by paretonas search --out)")


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--dataset", "imagenet"], None,
         "error: --dataset: got 'imagenet'; allowed: digits, mnist, fashion-mnist, cifar10, "
         "cifar100, npz"),
        (["--space", "SPACE"], '{"kinds": ["conv"]}',
         "error: --space: space.kinds[0]: got 'conv'; allowed: full, bilinear, lowrank"),
        (["--space", "SPACE"], "{kinds: [", None),
        (["--space", "missing.json"], None,
         "error: --space: cannot read 'missing.json' (No such file or directory)"),
        (["--sampler", "grid"], None, "error: --sampler: got 'grid'; allowed: tpe, nsga2, random"),
        (["--dataset", "mnist"], None,
         "error: --data-dir: missing; dataset 'mnist' is read from disk, give the folder holding "
         "its files"),
    ],
)
def test_argument_errors_print_one_line_and_exit_2(
    tmp_path: Path, args: list[str], content: str | None, message: str | None
) -> None:
    if content is not None:
        (tmp_path / "space.yaml").write_text(content)
        args = [str(tmp_path / "space.yaml") if a == "SPACE" else a for a in args]
    result = CliRunner().invoke(app, ["search", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    if message is not None:
        assert lines[0] == message
    else:
        assert lines[0].startswith("error: --space: ") and "is not valid JSON or YAML" in lines[0]
    assert not (tmp_path / "out").exists()


def test_sigint_stops_after_the_current_trial_and_writes_results(
    tmp_path: Path, space_file: Path
) -> None:
    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "search", "--trials", "500", "--space",
         str(space_file), "--seed", "2", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
    )
    assert child.stderr is not None
    for line in child.stderr:  # wait until a trial has finished
        if line.startswith("trial 1:"):
            break
    child.send_signal(signal.SIGINT)
    stdout, _ = child.communicate(timeout=120)
    assert child.returncode == 130, stdout
    document = json.loads((out / "front.json").read_text())
    assert document["interrupted"] is True
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert 2 <= len(rows) == document["trials_done"] < 500
    assert {row["state"] for row in rows} == {"complete"}  # the current trial was finished
    assert (out / "pareto.png").exists() and "(interrupted)" in stdout


def test_sigterm_stops_the_trial_in_flight_writes_results_and_leaves_none_running(
    tmp_path: Path
) -> None:
    space = tmp_path / "space.json"  # trials of a few seconds, so SIGTERM lands inside one
    space.write_text(json.dumps({**TINY_SPACE, "train": {"epochs": 60, "finetune_epochs": 0,
                                                         "batch_size": 256}}))
    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "search", "--trials", "50", "--space", str(space),
         "--seed", "3", "--out", str(out), "--no-early-stopping"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
    )
    assert child.stderr is not None
    for line in child.stderr:  # trial 0 is done: trial 1 (about 2 s here) comes next
        if line.startswith("trial 0:"):
            break
    # A SIGTERM in the instant between printing trial 0 and starting trial 1 rightly ends the
    # search with no trial in flight (all complete); wait until trial 1 has begun training.
    time.sleep(0.5)
    child.send_signal(signal.SIGTERM)
    stdout, _ = child.communicate(timeout=120)
    assert child.returncode == 143, stdout
    assert json.loads((out / "front.json").read_text())["interrupted"] is True
    with (out / "trials.csv").open() as handle:
        states = [row["state"] for row in csv.DictReader(handle)]
    assert states[0] == "complete" and states[-1] == "stopped" and len(states) < 50
    with sqlite3.connect(out / "optuna.db") as db:
        stored = {state for (state,) in db.execute("SELECT state FROM trials")}
    assert "RUNNING" not in stored
