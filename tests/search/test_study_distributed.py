"""Several real processes on one study through one storage (SQLite file, PostgreSQL).

Each child process asks, trains (a tiny model, one epoch) and tells trials of the same study; the
trial numbers they were handed must be distinct and the study must hold every trial, complete.
PostgreSQL runs in a schema of its own (dropped afterwards) on the server named by
PARETONAS_TEST_POSTGRES_URL; without a server the test skips, except under CI=true where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from search import engine
from search.config import parse_config
from search.records import StudyRef
from search.study import close_storage

POSTGRES_URL = os.environ.get(
    "PARETONAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TRIALS_PER_PROCESS = 3
CONFIG = {
    "n_trials": 2 * TRIALS_PER_PROCESS, "sampler": "tpe", "seed": 11,
    "space": {"depth": [1, 2], "multipliers": [0.25, 0.5], "kinds": ["full", "bilinear"],
              "train": {"epochs": 1, "finetune_epochs": 0, "batch_size": 256}},
}
CHILD = """
import json, sys
from search import engine
from search.config import parse_config
from search.datasets import load_dataset, split_dataset
from search.records import StudyRef
ref = StudyRef(storage_url=sys.argv[1], study_name=sys.argv[2])
config = parse_config(json.loads(sys.argv[3]))
splits = split_dataset(load_dataset("digits"), seed=0)
numbers = []
for _ in range(int(sys.argv[4])):
    ticket = engine.ask(ref=ref, config=config)
    engine.tell(ref=ref, outcome=engine.run_ticket(ticket=ticket, config=config, splits=splits))
    numbers.append(ticket.number)
print(json.dumps(numbers))
"""


def _run_two_processes(storage_url: str) -> None:
    ref = StudyRef(storage_url=storage_url, study_name=f"two-procs-{uuid.uuid4().hex[:12]}")
    config = parse_config(CONFIG)
    engine.create_study(ref=ref, config=config)  # once, before the workers start
    args = [storage_url, ref.study_name, json.dumps(CONFIG), str(TRIALS_PER_PROCESS)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    numbers: list[int] = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        numbers.extend(json.loads(out.strip().splitlines()[-1]))
    assert sorted(numbers) == list(range(2 * TRIALS_PER_PROCESS))  # distinct, none lost
    records = engine.trials(ref=ref)
    assert [r.number for r in records] == list(range(2 * TRIALS_PER_PROCESS))
    # a proposal equal to a finished trial is settled as its duplicate, without training
    assert {r.state for r in records} <= {"complete", "duplicate"}
    by_number = {r.number: r for r in records}
    for r in records:
        if r.state == "duplicate":
            assert r.duplicate_of is not None
            original = by_number[r.duplicate_of]
            assert (original.state, original.trial_params) == ("complete", r.trial_params)
    assert all(r.params is not None and r.params > 0 for r in records)
    assert len(engine.front(ref=ref, config=config)) >= 1
    close_storage(storage_url)


def test_two_processes_share_a_sqlite_study(tmp_path: Path) -> None:
    _run_two_processes(f"sqlite:///{tmp_path / 'optuna.db'}")


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    conninfo = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    schema = f"optuna_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            sep = "&" if "?" in POSTGRES_URL else "?"
            yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
def test_two_processes_share_a_postgres_study(postgres_schema_url: str) -> None:
    _run_two_processes(postgres_schema_url)
