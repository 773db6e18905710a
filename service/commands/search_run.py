"""The --out folder of `paretonas search`: a fresh search, or an explicit ``--resume``.

A search writes ``run.json`` into its folder before its first trial: the study's name, where the
study lives (``storage``: null for the folder's own ``optuna.db``, else the URL with its password
hidden), the run's id and the config. That record, not the folder's name, says which study the
folder holds: a folder copied elsewhere and resumed continues its own copy of the study.

Without ``--resume`` a folder holding an earlier search (run.json, or the optuna.db/config.json
of an older version) is refused; with it the new arguments must describe the same search as the
record (``--trials`` may differ: it is how many more to train). Nothing is written here on a
refusal, and nothing imports torch or Optuna (SQLAlchemy only, to count earlier trials).
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec

from search.config import SearchConfig, parse_config
from search.errors import SearchError
from search.report import FRONT_JSON, TRIALS_CSV
from service.commands.search_args import (
    Usage,
    check_storage,
    connect_args,
    safe_url,
    sqlite_file_problem,
)

__all__ = ["CONFIG_JSON", "OPTUNA_DB", "RUN_JSON", "SHARED", "Run", "check_nothing_lost",
           "check_out", "compare", "folder_or_storage", "hold_folder", "plan_run",
           "releasing_folders", "study_present", "undone_on_refusal", "write_run"]

P = ParamSpec("P")
RUN_JSON = "run.json"
CONFIG_JSON = "config.json"
OPTUNA_DB = "optuna.db"
RUN_FORMAT = 1


@dataclass(frozen=True)
class Run:
    """Where this process's search lives. ``storage_url`` is what to connect to (password
    included); ``stored_storage`` is what run.json keeps (None: the folder's own optuna.db)."""

    out_dir: Path
    study_name: str
    storage_url: str
    stored_storage: str | None
    run_id: str
    resumed: bool


def own_storage(out_dir: Path) -> str:
    """The folder's own SQLite study file."""
    return f"sqlite:///{(out_dir / OPTUNA_DB).resolve()}"


def check_out(out: Path) -> None:
    """--out names a folder, or one that can be made: its nearest existing parent is a folder
    this process may write in."""
    if out.exists() and not out.is_dir():
        raise Usage(f"--out: {str(out)!r} is a file; name a folder (it is created if missing)")
    parent = out.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise Usage(f"--out: cannot create {str(out)!r}: {str(parent)!r} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        what = "it is" if parent == out.absolute() else f"folder {str(parent)!r} is"
        raise Usage(f"--out: cannot write in {str(out)!r}: {what} not writable by this user")


@contextmanager
def undone_on_refusal(run: Run) -> Iterator[None]:
    """Make the --out folder; if a Usage refusal comes before the first trial, a fresh run
    takes back what it wrote (run.json, config.json, optuna.db, the folder if it made it), so
    a refused search leaves nothing behind. A resumed run never deletes anything."""
    made = not run.out_dir.exists()
    try:
        run.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Usage(f"--out: cannot create {str(run.out_dir)!r} ({exc.strerror})") from None
    try:
        yield
    except Usage:
        if not run.resumed:
            for name in (RUN_JSON, CONFIG_JSON, OPTUNA_DB):
                (run.out_dir / name).unlink(missing_ok=True)
            if made and not any(run.out_dir.iterdir()):
                run.out_dir.rmdir()
        raise


def hold_folder(out_dir: Path) -> None:
    """Lock the --out folder for the life of this process (flock on the folder itself: the
    kernel drops it when the process ends, however it ends); Usage when another search holds
    it. Two processes writing one folder would fail each other's running trials and overwrite
    each other's results."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    key = out_dir.resolve()
    if key in _HELD:  # this process holds it already (a second search in one process)
        return
    descriptor = os.open(out_dir, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise Usage(f"--out: {str(out_dir)!r} is in use by another paretonas search running "
                    "now; wait for it to end, or choose another --out") from None
    _HELD[key] = descriptor  # kept open (and locked) until this process exits


_HELD: dict[Path, int] = {}


def releasing_folders(command: Callable[P, None]) -> Callable[P, None]:
    """``command`` that gives back every folder it locked when it returns or raises (a search
    run in-process, as tests and library users do, must not keep its folder locked after)."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        finally:
            while _HELD:
                os.close(_HELD.popitem()[1])  # closing the descriptor drops its flock

    return run


def folder_or_storage(run: Run) -> str:
    """Where the run's study lives, for messages (the password hidden)."""
    return str(run.out_dir / OPTUNA_DB) if run.stored_storage is None else run.stored_storage


def study_present(run: Run, *, exists: Callable[[], bool]) -> bool:
    """Whether a resumed run's study is still in its storage (``exists`` asks the storage; a
    SQLite file that is gone is not asked, which would create it)."""
    from sqlalchemy.engine import make_url

    url = make_url(run.storage_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return False
    return exists()


def check_nothing_lost(run: Run) -> None:
    """A resumed run whose study is gone may start it afresh only if no trial ever finished:
    Usage when the folder holds results (front.json, trials.csv) a new study would overwrite."""
    held = [name for name in (FRONT_JSON, TRIALS_CSV) if (run.out_dir / name).exists()]
    if held:
        raise Usage(f"--resume: the study {run.study_name!r} is no longer in "
                    f"{folder_or_storage(run)}, but {str(run.out_dir)!r} holds its results "
                    f"({', '.join(held)}); there is nothing to resume: restore the database, or "
                    "start a new search with another --out")


def _read_record(out_dir: Path) -> dict[str, Any]:
    path = out_dir / RUN_JSON
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("study_name"), str):
            raise ValueError("no study_name")
        return data
    except (OSError, ValueError) as exc:
        raise Usage(f"--resume: {str(path)!r} is not a run.json paretonas search wrote "
                    f"({type(exc).__name__}: {exc})") from None


def _count_trials(url: str, study_name: str | None) -> int | None:
    """Trials of ``study_name`` (every study's when None) in the Optuna tables at ``url``;
    None when they cannot be read (the count only decorates a refusal)."""
    from sqlalchemy import create_engine, text

    query = "SELECT COUNT(*) FROM trials"
    if study_name is not None:
        query += (" JOIN studies ON trials.study_id = studies.study_id"
                  " WHERE studies.study_name = :name")
    try:
        engine = create_engine(url, connect_args=connect_args(url))
        try:
            with engine.connect() as connection:
                return int(connection.execute(text(query), {"name": study_name}).scalar_one())
        finally:
            engine.dispose()
    except Exception:
        return None


def _earlier_trials(out_dir: Path) -> int | None:
    record: dict[str, Any] = {}
    if (out_dir / RUN_JSON).exists():
        try:
            record = _read_record(out_dir)
        except Usage:
            return None
    stored = record.get("storage")
    if isinstance(stored, str) and "***" not in stored:
        return _count_trials(stored, record["study_name"])
    if stored is None and (out_dir / OPTUNA_DB).exists():
        return _count_trials(own_storage(out_dir), record.get("study_name"))
    return None


def plan_run(*, out_dir: Path, resume: bool, storage: str | None, study_name: str | None,
             config: SearchConfig) -> Run:
    """The study this search runs in, or Usage: a folder with an earlier search and no
    ``--resume``, nothing to resume, or a resumed search with other arguments. ``storage`` is a
    URL ``check_storage`` accepted."""
    if not resume:
        if any((out_dir / name).exists() for name in (RUN_JSON, OPTUNA_DB, CONFIG_JSON)):
            count = _earlier_trials(out_dir)
            held = "an earlier search" + ("" if count is None else f" ({count} trials)")
            raise Usage(f"--out: {str(out_dir)!r} holds {held}; pass --resume to continue it, "
                        "or choose another --out")
        return Run(out_dir=out_dir, study_name=study_name or f"search-{out_dir.resolve().name}",
                   storage_url=storage or own_storage(out_dir),
                   stored_storage=None if storage is None else safe_url(storage),
                   run_id=uuid.uuid4().hex, resumed=False)
    if not (out_dir / RUN_JSON).exists():
        older = " (its files are from a version that kept no run.json)" if any(
            (out_dir / name).exists() for name in (OPTUNA_DB, CONFIG_JSON)) else ""
        raise Usage(f"--resume: {str(out_dir)!r} holds no {RUN_JSON}{older}; there is nothing "
                    "to resume")
    record = _read_record(out_dir)
    try:
        started = parse_config(record.get("config"))
    except SearchError as exc:
        raise Usage(f"--resume: {str(out_dir / RUN_JSON)!r} holds a config this version cannot "
                    f"read ({exc})") from None
    compare(started, config, origin="this run", joiner="a resumed search")
    name = record["study_name"]
    if study_name is not None and study_name != name:
        raise Usage(_kept("--study-name", "study", name, study_name))
    return Run(out_dir=out_dir, study_name=name,
               storage_url=_resumed_storage(out_dir, record.get("storage"), storage),
               stored_storage=record.get("storage"), run_id=str(record.get("run_id", "")),
               resumed=True)


def _resumed_storage(out_dir: Path, stored: str | None, given: str | None) -> str:
    """The URL a resumed search connects to: the record's, the password from --storage."""
    if stored is None:
        if given is not None:
            raise Usage(_kept("--storage", "storage", f"its own {OPTUNA_DB}", safe_url(given)))
        why = sqlite_file_problem(out_dir / OPTUNA_DB)  # none at all: see check_nothing_lost
        if why is not None:
            raise Usage(f"--resume: cannot open the study ({why})")
        return own_storage(out_dir)
    if not isinstance(stored, str):
        raise Usage(f"--resume: {str(out_dir / RUN_JSON)!r} holds storage {_show(stored)}, "
                    "not a database URL; this is not a run.json paretonas search wrote")
    if given is not None:
        if safe_url(given) != stored:
            raise Usage(_kept("--storage", "storage", stored, safe_url(given)))
        return given
    if "***" in stored:
        raise Usage(f"--storage: this run keeps its study in {stored}, whose password {RUN_JSON} "
                    "does not keep; pass --storage with the whole URL")
    return check_storage(stored)


def _kept(flag: str, what: str, old: str, new: str, *, origin: str = "this run",
          joiner: str = "a resumed search") -> str:
    return f"{flag}: {origin} was started with {old}; {joiner} keeps its {what} (got {new})"


def _show(value: Any) -> str:
    text = "none" if value is None else json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _first_difference(old: Any, new: Any, path: str) -> tuple[str, Any, Any]:
    """The first path (``space.layers[1].kinds``) at which two JSON values differ; a list of
    plain values is shown whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted({*old, *new}):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{path}.{key}")
    nested = isinstance(old, list) and any(isinstance(e, dict | list) for e in old)
    if nested and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{i}]")
    return path, old, new


def _differences(old: SearchConfig, new: SearchConfig) -> Iterator[tuple[str, str, str, str]]:
    """(flag, what, old, new) for each setting a continued search must keep."""
    for flag, what, a, b in (
        ("--dataset", "dataset", old.dataset, new.dataset),
        ("--objectives", "objectives", ",".join(old.objectives), ",".join(new.objectives)),
        ("--sampler", "sampler", old.sampler, new.sampler),
        ("--seed", "seed", old.seed, new.seed),
        ("--max-params", "parameter limit", old.max_params, new.max_params),
    ):
        if a != b:
            yield flag, what, _show(a), _show(b)
    if old.space.to_dict() != new.space.to_dict():
        path, a, b = _first_difference(old.space.to_dict(), new.space.to_dict(), "space")
        yield "--space", "space", f"{path}={_show(a)}", f"{path}={_show(b)}"
    rule, other = old.early_stopping, new.early_stopping
    if rule.enabled != other.enabled:
        yield ("--early-stopping", "early stopping", "--early-stopping" if rule.enabled else
               "--no-early-stopping", "--early-stopping" if other.enabled else
               "--no-early-stopping")
    if rule.checkpoints != other.checkpoints:
        yield ("--checkpoints", "checkpoints", ",".join(map(str, rule.checkpoints)) or
               "the default", ",".join(map(str, other.checkpoints)) or "the default")
    if rule.margin != other.margin:
        yield "--margin", "margin", f"{rule.margin:g}", f"{other.margin:g}"
    # The warm start ran when the study was created; leaving --warm-start out keeps it.
    if new.warm_start and new.warm_start != old.warm_start:
        yield ("--warm-start", "warm start", f"{len(old.warm_start)} warm-start architectures",
               f"{len(new.warm_start)} other ones")
    shapes = (old.input_shape, old.num_classes), (new.input_shape, new.num_classes)
    if None not in (*shapes[0], *shapes[1]) and shapes[0] != shapes[1]:
        yield ("--data-dir", "data", "input {} and {} classes".format(*shapes[0]),
               "input {} and {} classes".format(*shapes[1]))


# What processes sharing one study must agree on (the sampler, its seed and early stopping
# may differ per process); a resumed search keeps everything but --trials.
SHARED = frozenset({"--dataset", "--objectives", "--space", "--max-params", "--data-dir"})


def compare(old: SearchConfig, new: SearchConfig, *, origin: str, joiner: str,
            only: frozenset[str] | None = None) -> None:
    """Usage naming the flag of the first setting ``new`` changes (``n_trials`` may differ;
    with ``only``, just those flags count)."""
    for flag, what, a, b in _differences(old, new):
        if only is None or flag in only:
            raise Usage(_kept(flag, what, a, b, origin=origin, joiner=joiner))


def write_run(run: Run, config: SearchConfig) -> None:
    """run.json (a fresh search only: a resumed one keeps its record) and config.json."""
    if run.resumed:
        return
    run.out_dir.mkdir(parents=True, exist_ok=True)
    record = {"format": RUN_FORMAT, "study_name": run.study_name, "storage": run.stored_storage,
              "run_id": run.run_id, "created": datetime.now(UTC).isoformat(timespec="seconds"),
              "config": config.to_dict()}
    for name, data in ((CONFIG_JSON, config.to_dict()), (RUN_JSON, record)):
        temporary = run.out_dir / f".{name}.tmp"
        temporary.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(temporary, run.out_dir / name)
