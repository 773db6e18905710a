"""`paretonas search` arguments and run folders: each refusal is one line and exit 2, checked
before torch/Optuna load; --resume continues the study run.json names, and no path leaves a
RUNNING trial behind."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.commands.search_args import safe_url

TINY_SPACE = {"depth": [1, 2], "multipliers": [0.25, 0.5], "kinds": ["full", "bilinear"],
              "train": {"epochs": 1, "finetune_epochs": 0, "batch_size": 256}}
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real `python -m service.cli search` (main's error handling included)."""
    return subprocess.run([sys.executable, "-m", "service.cli", "search", *args], cwd=cwd,
                          env=ENV, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.json"
    path.write_text(json.dumps(TINY_SPACE))
    return path


def test_refusals_load_neither_torch_nor_optuna(tmp_path: Path) -> None:
    script = """
import sys
from service.cli import main
sys.argv = ["paretonas", "search", "--trials", "0"]
try:
    main()
except SystemExit as exc:
    print(exc.code, sorted(m for m in ("torch", "optuna", "sklearn") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == "2 []\n"
    assert done.stderr == "error: --trials: got 0; must be an integer in [1, 100000]\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--storage", "notadb://x/y"],
     "error: --storage: 'notadb://x/y' names database 'notadb', which SQLAlchemy does not know "
     "here; give a URL such as sqlite:///optuna.db or postgresql+psycopg://user@host/db"),
    (["--storage", "postgresql+psycopg://postgres:secret@127.0.0.1:1/x"],
     "error: --storage: cannot connect to postgresql+psycopg://postgres:***@127.0.0.1:1/x "
     "(connection failed: connection to server at \"127.0.0.1\", port 1 failed: Connection "
     "refused Is the server running on that host and accepting TCP/IP connections?)"),
    (["--storage", "sqlite:///nowhere/optuna.db"],
     "error: --storage: cannot open sqlite:///nowhere/optuna.db (folder 'CWD/nowhere' does not "
     "exist)"),
    (["--storage", "memory://"],
     "error: --storage: memory:// keeps a study inside one process, gone when it ends; leave "
     "--storage out for the --out folder's own optuna.db"),
    (["--out", "a-file"],
     "error: --out: 'a-file' is a file; name a folder (it is created if missing)"),
    (["--dataset", "mnist", "--data-dir", "nowhere"],
     "error: --data-dir: 'nowhere' does not exist"),
    (["--dataset", "npz", "--data-dir", "."],
     "error: --data-dir: '.' is a folder; dataset 'npz' reads one .npz file with arrays x and y"),
    (["--data-dir", "a-file"],
     "error: --data-dir: got 'a-file'; digits is built in and takes no --data-dir"),
    (["--resume"], "error: --resume: name the folder of the search to continue with --out"),
    (["--resume", "--out", "fresh"],
     "error: --resume: 'fresh' holds no run.json; there is nothing to resume"),
    (["--out", "a-file/run"], "error: --out: cannot create 'a-file/run': 'CWD/a-file' is a file"),
    (["--storage", "sqlite:///a-dir"],
     "error: --storage: cannot open sqlite:///a-dir ('CWD/a-dir' is a folder, not a database "
     "file)"),
    (["--storage", "sqlite:///notes.txt"],
     "error: --storage: cannot open sqlite:///notes.txt ('CWD/notes.txt' is not a SQLite "
     "database)"),
    (["--space", "latin1.json"],
     "error: --space: 'latin1.json' is not UTF-8 text (byte 16); save the space as JSON or YAML"),
    (["--space", "a-file"],
     "error: --space: 'a-file' holds no space; write the space as a JSON or YAML object, or "
     "leave --space out for the default space"),
    (["--checkpoints", ","], "error: --checkpoints: got ','; expected epochs separated by "
     "commas, e.g. 4,8 (leave it out for the default)"),
    (["--study-name", ""], "error: --study-name: got ''; give a name of 1 to 512 printable "
     "characters (leave it out for search-<folder name>)"),
    (["--study-name", "s" * 513], "error: --study-name: got '" + "s" * 56 + "...; give a name "
     "of 1 to 512 printable characters (leave it out for search-<folder name>)"),
])
def test_bad_arguments_in_a_real_process(tmp_path: Path, args: list[str], message: str) -> None:
    made = {"a-file": b"", "notes.txt": b"not a database\n",
            "latin1.json": b'{"depth": [1], "\xe9": 1}'}
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "a-dir").mkdir()
    done = _cli(*args, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == message.replace("CWD", str(tmp_path.resolve())) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*made, "a-dir"])  # no writes


@pytest.mark.parametrize(("args", "message"), [
    (["--trials", "0"], "error: --trials: got 0; must be an integer in [1, 100000]"),
    (["--seed", "-1"], "error: --seed: got -1; must be an integer in [0, 4294967295]"),
    (["--objectives", "accuracy"], "error: --objectives: got ['accuracy']; allowed: "
     "accuracy,params, accuracy,params,macs"),
    (["--margin", "2"], "error: --margin: got 2.0; must be a number in [0, 1] (accuracy points "
     "below the neighbour)"),
    (["--max-params", "100", "--space", "SPACE"], "error: --max-params: got 100; the smallest "
     "architecture of the space has 3338 parameters: raise --max-params to at least 3338 or add "
     "smaller choices to the space"),
])
def test_messages_name_the_flags(tmp_path: Path, space_file: Path, args: list[str],
                                 message: str) -> None:
    args = [str(space_file) if a == "SPACE" else a for a in args]
    result = CliRunner().invoke(app, ["search", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    assert result.stderr == message + "\n"
    assert not (tmp_path / "out").exists()


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "trials.csv").open() as handle:
        return list(csv.DictReader(handle))


def _states(db: Path) -> dict[str, list[str]]:
    """Study name -> the states of its trials, read with sqlite3 (no Optuna)."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT studies.study_name, trials.state FROM trials JOIN studies "
            "ON trials.study_id = studies.study_id ORDER BY trials.number").fetchall()
    out: dict[str, list[str]] = {}
    for name, state in rows:
        out.setdefault(name, []).append(state)
    return out


def test_a_rerun_needs_resume_which_keeps_the_search(tmp_path: Path, space_file: Path) -> None:
    out = tmp_path / "run"
    base = ["--space", str(space_file), "--seed", "1", "--out", str(out)]
    first = CliRunner().invoke(app, ["search", "--trials", "1", *base])
    assert first.exit_code == 0, first.output
    record = json.loads((out / "run.json").read_text())
    assert (record["study_name"], record["storage"], record["format"]) == ("search-run", None, 1)
    assert record["config"] == json.loads((out / "config.json").read_text())
    before = {name: (out / name).read_bytes() for name in ("run.json", "config.json")}
    earlier = _rows(out)

    again = _cli("--trials", "1", *base, cwd=tmp_path)
    assert (again.returncode, again.stdout) == (2, "")
    assert again.stderr == (f"error: --out: {str(out)!r} holds an earlier search "
                            f"({len(earlier)} trials); pass --resume to continue it, or choose "
                            "another --out\n")
    for flags, message in [
        (["--objectives", "accuracy,params,macs"], "--objectives: this run was started with "
         "accuracy,params; a resumed search keeps its objectives (got accuracy,params,macs)"),
        (["--sampler", "random"], "--sampler: this run was started with tpe; a resumed search "
         "keeps its sampler (got random)"),
        (["--study-name", "other"], "--study-name: this run was started with search-run; a "
         "resumed search keeps its study (got other)"),
    ]:
        refused = CliRunner().invoke(app, ["search", "--trials", "1", *base, "--resume", *flags])
        assert (refused.exit_code, refused.stderr) == (2, f"error: {message}\n")
    other_space = tmp_path / "other.json"
    other_space.write_text(json.dumps({**TINY_SPACE, "depth": [1, 3]}))
    refused = CliRunner().invoke(app, ["search", *base, "--space", str(other_space), "--resume"])
    assert (refused.exit_code, refused.stderr) == (2, (
        "error: --space: this run was started with space.depth=[1, 2]; a resumed search keeps "
        "its space (got space.depth=[1, 3])\n"))
    assert {name: (out / name).read_bytes() for name in before} == before
    assert _states(out / "optuna.db") == {"search-run": ["COMPLETE"] * len(earlier)}

    resumed = CliRunner().invoke(app, ["search", "--trials", "1", *base, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    rows = _rows(out)
    assert rows[:len(earlier)] == earlier
    assert [r["number"] for r in rows] == [str(i) for i in range(len(rows))]
    assert sum(r["state"] == "complete" for r in rows[len(earlier):]) == 1
    assert list(_states(out / "optuna.db")) == ["search-run"]  # one study, continued
    assert {name: (out / name).read_bytes() for name in before} == before
    front = json.loads((out / "front.json").read_text())["front"]
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted(
        f"trial-{m['number']}.safetensors" for m in front)
    assert "were trained by another process" not in resumed.output


def test_a_copied_folder_resumes_its_own_copy_and_fails_what_was_left_running(
    tmp_path: Path, space_file: Path
) -> None:
    import optuna

    original = tmp_path / "run"
    base = ["--space", str(space_file), "--seed", "2", "--trials", "1"]
    assert CliRunner().invoke(app, ["search", *base, "--out", str(original)]).exit_code == 0
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    untouched = (original / "optuna.db").read_bytes()
    study = optuna.load_study(study_name="search-run", storage=f"sqlite:///{copy / 'optuna.db'}")
    left = study.ask().number  # what a process killed mid-trial leaves: RUNNING
    del study

    resumed = _cli(*base, "--out", str(copy), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    notes = [line for line in resumed.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"note: trial {left} was left running by an earlier process that stopped; "
                     "marked failed"]
    rows = _rows(copy)
    assert rows[left]["state"] == "failed"
    assert rows[left]["reason"] == ("left running by an earlier process that stopped; failed by "
                                    "--resume")
    assert "running" not in {r["state"] for r in rows}
    assert list(_states(copy / "optuna.db")) == ["search-run"]  # not a study named "search-copy"
    assert (original / "optuna.db").read_bytes() == untouched


def test_a_failing_trial_is_told_fail(tmp_path: Path, space_file: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from search import engine

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine, "run_ticket", broken)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["search", "--space", str(space_file), "--trials", "1",
                                      "--out", str(out)])
    assert isinstance(result.exception, RuntimeError)
    assert _states(out / "optuna.db") == {"search-run": ["FAIL"]}


def test_older_folders_and_joined_studies(tmp_path: Path, space_file: Path) -> None:
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text("{}")
    refused = CliRunner().invoke(app, ["search", "--out", str(legacy)])
    assert (refused.exit_code, refused.stderr) == (2, (
        f"error: --out: {str(legacy)!r} holds an earlier search; pass --resume to continue it, "
        "or choose another --out\n"))
    refused = CliRunner().invoke(app, ["search", "--out", str(legacy), "--resume"])
    assert (refused.exit_code, refused.stderr) == (2, (
        f"error: --resume: {str(legacy)!r} holds no run.json (its files are from a version that "
        "kept no run.json); there is nothing to resume\n"))
    # A second folder joining a study in a shared storage must search the same space.
    shared = ["--storage", f"sqlite:///{tmp_path / 'shared.db'}", "--study-name", "shared",
              "--trials", "1"]
    first = CliRunner().invoke(app, ["search", "--space", str(space_file), *shared,
                                     "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert json.loads((tmp_path / "a" / "run.json").read_text())["storage"] == (
        f"sqlite:///{tmp_path / 'shared.db'}")
    joined = CliRunner().invoke(app, ["search", *shared, "--out", str(tmp_path / "b")])
    assert (joined.exit_code, joined.stderr) == (2, (
        "error: --space: study 'shared' was started with space.depth=[1, 2]; a search joining it "
        "keeps its space (got space.depth=[2])\n"))
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("name", "text"), [
    ("space.json", json.dumps({**TINY_SPACE, "depth": [1], "train": {
        **TINY_SPACE["train"], "lr": "LR"}}).replace('"LR"', "2e-3")),
    ("space.yaml", "depth: [1]\nmultipliers: [0.25]\nkinds: [full]\n"
     "train: {epochs: 1, finetune_epochs: 0, batch_size: 256, lr: 2e-3}\n"),
])
def test_exponent_numbers_in_a_space_file_are_numbers(tmp_path: Path, name: str,
                                                      text: str) -> None:
    """PyYAML's YAML 1.1 rules read 2e-3 as a string, and every space file went through them
    (a JSON one too): '--space: space.train.lr: got '2e-3'; must be a number > 0.0'."""
    space = tmp_path / name
    space.write_text(text)
    out = tmp_path / "run"
    done = CliRunner().invoke(app, ["search", "--trials", "1", "--space", str(space),
                                    "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert json.loads((out / "config.json").read_text())["space"]["train"]["lr"] == 0.002


def test_a_folder_in_use_by_a_running_search_is_refused(tmp_path: Path) -> None:
    """A second process resuming a folder while the first still trains in it failed the
    first's running trial and overwrote its results; the folder is now locked (flock)."""
    space = tmp_path / "slow.json"
    space.write_text(json.dumps({**TINY_SPACE, "train": {"epochs": 100_000, "finetune_epochs": 0,
                                                         "batch_size": 256}}))
    out = tmp_path / "run"
    args = ["--trials", "2", "--space", str(space), "--out", str(out), "--no-early-stopping"]
    first = subprocess.Popen([sys.executable, "-m", "service.cli", "search", *args], cwd=tmp_path,
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _states_or_none(out / "optuna.db") and time.monotonic() < deadline:
            time.sleep(0.2)  # trial 0 is running once the study holds it
        second = _cli(*args, "--resume", cwd=tmp_path)
        assert (second.returncode, second.stderr) == (2, (
            f"error: --out: {str(out)!r} is in use by another paretonas search running now; wait "
            "for it to end, or choose another --out\n"))
        assert _states(out / "optuna.db") == {"search-run": ["RUNNING"]}  # left alone
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143
    assert _states(out / "optuna.db") == {"search-run": ["PRUNED"]}  # stopped, not failed
    descriptor = os.open(out, os.O_RDONLY)  # the lock ended with its process
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(descriptor)


def _states_or_none(db: Path) -> dict[str, list[str]] | None:
    try:
        return _states(db) if db.exists() else None
    except sqlite3.Error:
        return None


def test_resume_refuses_when_the_study_is_gone_but_its_results_are_not(
    tmp_path: Path, space_file: Path
) -> None:
    """A shared SQLite study deleted under a folder: --resume made a new empty study and
    overwrote the folder's front.json and trials.csv. A folder with no results yet (stopped
    before its first trial) resumes by starting its study."""
    out, shared = tmp_path / "run", tmp_path / "shared.db"
    base = ["--trials", "1", "--space", str(space_file), "--out", str(out)]
    first = CliRunner().invoke(app, ["search", *base, "--storage", f"sqlite:///{shared}"])
    assert first.exit_code == 0, first.output
    results = {name: (out / name).read_bytes() for name in ("front.json", "trials.csv")}
    shared.unlink()
    refused = CliRunner().invoke(app, ["search", *base, "--resume"])
    assert (refused.exit_code, refused.stderr) == (2, (
        f"error: --resume: the study 'search-run' is no longer in sqlite:///{shared}, but "
        f"{str(out)!r} holds its results (front.json, trials.csv); there is nothing to resume: "
        "restore the database, or start a new search with another --out\n"))
    assert {name: (out / name).read_bytes() for name in results} == results
    assert not shared.exists()  # not created by the refusal

    for name in ("front.json", "trials.csv", "pareto.png"):
        (out / name).unlink()
    shutil.rmtree(out / "models")
    resumed = _cli(*base, "--resume", cwd=tmp_path)  # a process of its own: this one keeps
    assert resumed.returncode == 0, resumed.stderr  # an Optuna storage on the deleted file
    assert [row["state"] for row in _rows(out)] == ["complete"]


def test_a_refused_fresh_search_leaves_no_files(tmp_path: Path, space_file: Path) -> None:
    """A study the shared storage holds with other objectives is refused after the folder was
    made: run.json, config.json and the folder itself are taken back."""
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    first = CliRunner().invoke(app, ["search", "--trials", "1", "--space", str(space_file),
                                     "--storage", shared, "--study-name", "s", "--out",
                                     str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    refused = CliRunner().invoke(app, ["search", "--trials", "1", "--space", str(space_file),
                                       "--storage", shared, "--study-name", "s", "--objectives",
                                       "accuracy,params,macs", "--out", str(tmp_path / "b")])
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith("error: --objectives: ")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://user:secret@db.example/x", "postgresql+psycopg://user:***@db.example/x"),
    ("postgresql+psycopg://user@db.example/x", "postgresql+psycopg://user@db.example/x"),
    # a raw @ in the password: SQLAlchemy cuts at the first one and showed 'ss@host' as the host
    ("postgresql://u:p@ss@127.0.0.1/db", "postgresql://u:***@127.0.0.1/db"),
    ("not a url u:secret@host", "not a url u:secret@host"),
    ("weird://u:secret@host/db", "weird://u:***@host/db"),
])
def test_passwords_are_never_shown(url: str, shown: str) -> None:
    assert safe_url(url) == shown
