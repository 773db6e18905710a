"""The arguments of `paretonas search`, checked before torch, Optuna or any data is loaded.

Everything here is cheap (no torch, no Optuna; SQLAlchemy only to check ``--storage``), so a bad
argument is answered in well under a second instead of after the imports and the dataset.
``flag_message`` is the ONE place where search/'s field paths (``n_trials``, ``max_params``,
``path``, ``space.kinds[0]``) become the flags a user typed (``--trials``, ``--max-params``,
``--data-dir``, ``--space: space.kinds[0]``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from models.errors import SpecError
from search.config import SearchConfig, parse_config
from search.datasets import check_path
from search.errors import SpaceError

__all__ = ["Usage", "check_data_dir", "check_storage", "flag_message", "parse_args",
           "safe_url", "sqlite_file_problem"]

CONNECT_TIMEOUT_S = 3


class Usage(Exception):
    """A bad argument: printed as one line naming the flag, exit 2."""


# search/ field -> the flag that sets it. ``space.*`` and ``warm_start[i]...`` keep their inner
# path after the flag: it says where in the file the problem is.
FLAGS: dict[str, str] = {
    "n_trials": "--trials", "max_params": "--max-params", "seed": "--seed",
    "sampler": "--sampler", "objectives": "--objectives", "dataset": "--dataset",
    "path": "--data-dir", "early_stopping": "--early-stopping",
    "early_stopping.enabled": "--early-stopping", "early_stopping.checkpoints": "--checkpoints",
    "early_stopping.margin": "--margin", "storage": "--storage", "study_name": "--study-name",
}
_KEEP_PATH = {"space": "--space", "warm_start": "--warm-start"}


def _field(path: str) -> str:
    """``early_stopping.checkpoints[1]`` -> ``early_stopping.checkpoints``."""
    return re.sub(r"\[\d+\]$", "", path)


def flag_message(error: Exception) -> str:
    """One line naming the flag for an error search/ or models/ raised (``field: detail``)."""
    text = " ".join(str(error).split())
    path, sep, detail = text.partition(": ")
    if isinstance(error, SpaceError | SpecError):  # the path attribute is exact (may hold ': ')
        path = error.path if isinstance(error, SpaceError) else error.field
        detail = text[len(path) + 2:]
    elif not sep:
        return text
    head = re.split(r"[.\[]", path, maxsplit=1)[0]
    if head in _KEEP_PATH:
        return f"{_KEEP_PATH[head]}: {path}: {detail}"
    flag = FLAGS.get(_field(path))
    if flag is None:
        return text
    # The CLI cannot pass null; "must be null or an integer" reads as "must be an integer".
    detail = detail.replace("must be null or ", "must be ")
    detail = re.sub(rf"\b{re.escape(_field(path))}\b", flag, detail)
    return f"{flag}: {detail}"


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading floats as YAML 1.2 (and JSON) do: ``1e-3`` is a number, not
    the string PyYAML's YAML 1.1 rules make of it (they want ``1.0e-3``)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _read_space(path: Path | None) -> Any:
    """The space file's data: JSON, else YAML; Usage when it cannot be read or is empty."""
    if path is None:
        return None
    shown = repr(str(path))
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise Usage(f"--space: cannot read {shown} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise Usage(f"--space: {shown} is not UTF-8 text (byte {exc.start}); save the space as "
                    "JSON or YAML") from None
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.load(text, Loader=_YamlLoader)  # a SafeLoader: plain data only
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())  # one line
            raise Usage(f"--space: {shown} is not valid JSON or YAML ({detail})") from None
    if data is None:  # an empty file, or one holding only null
        raise Usage(f"--space: {shown} holds no space; write the space as a JSON or YAML "
                    "object, or leave --space out for the default space")
    return data


def _read_warm_start(path: Path | None) -> list[Any]:
    if path is None:
        return []
    try:
        front = json.loads(path.read_text())["front"]
        return [member["trial_params"] for member in front]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Usage(f"--warm-start: {str(path)!r} is not a front.json written by paretonas "
                    f"search ({type(exc).__name__}: {exc})") from None


def _early_stopping(args: dict[str, Any]) -> dict[str, Any]:
    """The config's ``early_stopping`` object from --early-stopping, --checkpoints, --margin."""
    rule: dict[str, Any] = {}
    if args.get("early_stopping") is not None:
        rule["enabled"] = args["early_stopping"]
    if args.get("checkpoints") is not None:
        given = args["checkpoints"]
        try:
            rule["checkpoints"] = [int(e) for e in given.split(",") if e.strip()]
        except ValueError:
            rule["checkpoints"] = []
        if not rule["checkpoints"]:
            raise Usage(f"--checkpoints: got {given!r}; expected epochs separated by commas, "
                        "e.g. 4,8 (leave it out for the default)")
    if args.get("margin") is not None:
        rule["margin"] = args["margin"]
    return {"early_stopping": rule} if rule else {}


MAX_STUDY_NAME = 512  # Optuna's studies.study_name column


def check_study_name(name: str | None) -> None:
    """--study-name: printable, 1 to ``MAX_STUDY_NAME`` characters (Optuna's column)."""
    if name is None:
        return
    if not name.strip() or len(name) > MAX_STUDY_NAME or not name.isprintable():
        raise Usage(f"--study-name: got {_clip(name)}; give a name of 1 to {MAX_STUDY_NAME} "
                    "printable characters (leave it out for search-<folder name>)")


def _clip(value: str) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def parse_args(args: dict[str, Any]) -> SearchConfig:
    """The search config the flags describe (no data loaded: ``with_data`` comes later)."""
    check_study_name(args.get("study_name"))
    objectives = [o.strip() for o in args["objectives"].split(",") if o.strip()]
    space = _read_space(args["space"])
    try:
        return parse_config({
            "dataset": args["dataset"], **({} if space is None else {"space": space}),
            "objectives": objectives, "n_trials": args["trials"], "sampler": args["sampler"],
            "seed": args["seed"], "max_params": args["max_params"],
            "warm_start": _read_warm_start(args["warm_start"]),
            **_early_stopping(args),
        })
    except SpaceError as exc:
        raise Usage(flag_message(exc)) from None


def check_data_dir(dataset: str, data_dir: Path | None) -> None:
    """--data-dir fits --dataset and exists (what load_dataset reads comes later)."""
    try:
        check_path(dataset, data_dir)
    except ValueError as exc:
        raise Usage(flag_message(exc)) from None
    if data_dir is None:
        return
    if not data_dir.exists():
        raise Usage(f"--data-dir: {str(data_dir)!r} does not exist")
    if dataset == "npz" and data_dir.is_dir():
        raise Usage(f"--data-dir: {str(data_dir)!r} is a folder; dataset 'npz' reads one .npz "
                    "file with arrays x and y")
    if dataset != "npz" and not data_dir.is_dir():
        raise Usage(f"--data-dir: {str(data_dir)!r} is a file; dataset {dataset!r} reads the "
                    "folder holding its files")


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def safe_url(url: str) -> str:
    """``url`` with its password shown as ***, whether or not SQLAlchemy can parse it. A
    password holding a raw ``@`` (it should be written %40) is hidden up to the last ``@`` of
    the host part: SQLAlchemy would cut it at the first and show the rest as the host."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0]
    if sep and authority.count("@") > 1 and ":" in authority:
        user = authority.split(":", 1)[0]
        return f"{scheme}://{user}:***{rest[authority.rindex('@'):]}"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD.sub(r"\1***@", url)


_SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold a SQLite database (a folder, another kind of file, unreadable);
    None when it can (a SQLite file, an empty one, or none yet)."""
    if path.is_dir():
        return f"{str(path)!r} is a folder, not a database file"
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return f"{str(path)!r} cannot be read: {exc.strerror}"
    if head and head != _SQLITE_HEADER:
        return f"{str(path)!r} is not a SQLite database"
    return None


def connect_args(url: str) -> dict[str, Any]:
    """Driver arguments that bound how long connecting may take (PostgreSQL, MySQL)."""
    from sqlalchemy.engine import make_url

    backend = make_url(url).get_backend_name()
    return {"connect_timeout": CONNECT_TIMEOUT_S} if backend in ("postgresql", "mysql") else {}


_EXAMPLES = "sqlite:///optuna.db or postgresql+psycopg://user@host/db"


def check_storage(url: str) -> str:
    """A storage URL SQLAlchemy parses, whose driver is installed and whose database answers
    within ``CONNECT_TIMEOUT_S`` (a SQLite file: whose folder exists); returns it with a
    relative SQLite path made absolute (so a resumed search finds the same file from any
    folder)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    shown = safe_url(url)
    if url.startswith("memory://"):
        raise Usage("--storage: memory:// keeps a study inside one process, gone when it ends; "
                    "leave --storage out for the --out folder's own optuna.db")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise Usage(f"--storage: cannot parse {shown!r} as a database URL; give one such as "
                    f"{_EXAMPLES}") from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise Usage(f"--storage: {shown!r} names database {parsed.drivername!r}, which "
                    f"SQLAlchemy does not know here; give a URL such as {_EXAMPLES}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise Usage(f"--storage: {shown!r} is an in-memory database, gone with this "
                        "process; name a file (sqlite:///optuna.db) or leave --storage out for "
                        "the --out folder's own optuna.db")
        # Not opened here: connecting creates the file, and a refused run must leave none.
        database = Path(parsed.database).resolve()
        if not database.parent.is_dir():
            raise Usage(f"--storage: cannot open {shown} (folder {str(database.parent)!r} does "
                        "not exist)")
        why = sqlite_file_problem(database)
        if why is not None:
            raise Usage(f"--storage: cannot open {shown} ({why})")
        return parsed.set(database=str(database)).render_as_string(hide_password=False)
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise Usage(f"--storage: the driver of {shown!r} is not installed ({exc}); install it "
                    "or give a URL such as postgresql+psycopg://user@host/db") from None
    engine = create_engine(parsed, connect_args=connect_args(url))
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise Usage(f"--storage: cannot connect to {shown} ({reason[:300]})") from None
    finally:
        engine.dispose()
    return parsed.render_as_string(hide_password=False)
