"""What the search tests that train or store studies share: the digits splits and study names.

The splits load once a module (loading and splitting digits is most of a small test's time);
`new_ref` hands out study names no other test uses and deletes those studies after the test,
so the process-wide in-memory storage does not grow from test to test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import optuna
import pytest

from search.datasets import Splits, load_dataset, split_dataset
from search.records import StudyRef
from search.study import MEMORY_URL, get_storage

NewRef = Callable[[], StudyRef]
"""The type of the `new_ref` fixture: call it for a fresh study ref."""


@pytest.fixture(scope="module")
def splits() -> Splits:
    return split_dataset(load_dataset("digits"), seed=0)


@pytest.fixture
def new_ref(request: pytest.FixtureRequest) -> Iterator[NewRef]:
    """A maker of in-memory study refs named after the test module; deleted after the test."""
    created: list[StudyRef] = []
    prefix = request.path.stem.replace("_", "-")

    def make() -> StudyRef:
        ref = StudyRef(storage_url=MEMORY_URL, study_name=f"{prefix}-{uuid.uuid4().hex}")
        created.append(ref)
        return ref

    yield make
    storage = get_storage(MEMORY_URL)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    for ref in created:
        if ref.study_name in names:
            optuna.delete_study(study_name=ref.study_name, storage=storage)
