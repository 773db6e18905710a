"""CSV and JSON exports of a job's front and trials, streamed in keyset batches.

The trials export reads ``BATCH`` rows at a time by trial number (``number > last``), in its own
read session, so a job with 100,000 trials streams in constant memory. The rows are exactly the
API's ``TrialPublic`` / ``ParetoMemberPublic`` (CSV: nested fields as JSON text).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Engine, select

from service.api.results import layer_kinds, trial_public
from service.api.schemas import ParetoPublic, TrialPublic
from service.db.engine import read_session
from service.db.tables import Trial

__all__ = ["BATCH", "FRONT_COLUMNS", "TRIAL_COLUMNS", "front_csv", "trials_csv", "trials_json"]

BATCH = 2000
TRIAL_COLUMNS = (
    "number", "attempt", "retry_of", "state", "val_accuracy", "test_accuracy", "params", "macs",
    "feasible", "train_seconds", "started_at", "finished_at", "error", "choices", "spec",
)  # fmt: skip
FRONT_COLUMNS = (
    "trial_number", "val_accuracy", "test_accuracy", "params", "macs", "layers", "added_at",
    "model_url", "spec",
)  # fmt: skip


# A text cell that begins like a formula is run by spreadsheets (CSV injection): a leading ' keeps
# it text. Numbers are never text here, so a negative number is untouched.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""  # null, as the JSON exports write NaN and infinities
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_lines(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[name]) for name in columns])
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _trial_batches(engine: Engine, *, job_id: str) -> Iterator[list[TrialPublic]]:
    last = -1
    while True:
        with read_session(engine) as session:
            rows = session.scalars(
                select(Trial)
                .where(Trial.job_id == job_id, Trial.number > last)
                .order_by(Trial.number)
                .limit(BATCH)
            ).all()
        if not rows:
            return
        last = rows[-1].number
        yield [trial_public(row) for row in rows]


def trials_csv(engine: Engine, *, job_id: str) -> Iterator[str]:
    """The job's trials by number as CSV (header row first)."""
    rows = (row.model_dump(mode="json")
            for batch in _trial_batches(engine, job_id=job_id) for row in batch)
    return _csv_lines(TRIAL_COLUMNS, rows)


def trials_json(engine: Engine, *, job_id: str) -> Iterator[str]:
    """The job's trials by number as one JSON array of TrialPublic objects, each as the trials
    pages write it (NaN and infinities as null)."""
    yield "["
    first = True
    for batch in _trial_batches(engine, job_id=job_id):
        text = ",".join(row.model_dump_json() for row in batch)
        yield text if first else "," + text
        first = False
    yield "]"


def front_csv(pareto: ParetoPublic) -> str:
    """The front's members (by parameters) as CSV; ``layers`` spells the layer choices."""
    rows = []
    for member in pareto.members:
        row = member.model_dump(mode="json")
        row["layers"] = layer_kinds(member.spec)
        rows.append(row)
    return "".join(_csv_lines(FRONT_COLUMNS, rows))
