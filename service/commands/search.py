"""`paretonas search`: run a search in this process and write its front, trials and plot.

    paretonas search --dataset digits --trials 40 [--space space.json|yaml] [--sampler tpe]
        [--seed 0] [--max-params 50000] [--storage URL] [--out DIR] [--data-dir PATH]
        [--objectives accuracy,params[,macs]] [--warm-start previous/front.json] [--onnx]
        [--early-stopping/--no-early-stopping] [--checkpoints 4,8] [--margin 0.02]

``--trials`` counts trained trials: a proposed architecture that is already done is a duplicate
(not trained, not counted) and one over --max-params is refused before training; a space with
fewer distinct architectures ends when all are done, saying so.

A progress bar shows trials done, the current front size and hypervolume. At the end (or after
Ctrl-C: the first stops after the current trial, a second one stops it at its next epoch) the front
is printed as a table and front.json, trials.csv, pareto.png and the front members' models
(models/trial-N.safetensors, and .onnx with --onnx) are written into --out. Bad
arguments print one line and exit 2; an interrupted search exits 130 after writing its results.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from models.errors import SpecError
from search import engine, report
from search.config import SearchConfig, parse_config
from search.datasets import Splits, load_dataset, split_dataset
from search.errors import SearchError
from search.front_files import MODELS_DIR, write_front_models
from search.heap import retain_freed_memory
from search.pareto import FrontPoint, hypervolume, insert
from search.records import StudyRef, TrialOutcome

__all__ = ["search"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Usage(Exception):
    """A bad argument: printed as one line, exit 2."""


@dataclass
class _Stop:
    """Ctrl-C state: first press finishes the current trial, the second stops it now."""

    after_trial: bool = False
    now: bool = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.after_trial:
            self.now = True
        self.after_trial = True


def _read_space(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except OSError as exc:
        raise _Usage(f"--space: cannot read {str(path)!r} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())  # one line
        raise _Usage(f"--space: {str(path)!r} is not valid JSON or YAML ({detail})") from None


def _read_warm_start(path: Path | None) -> list[Any]:
    if path is None:
        return []
    try:
        front = json.loads(path.read_text())["front"]
        return [member["trial_params"] for member in front]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _Usage(f"--warm-start: {str(path)!r} is not a front.json written by paretonas "
                     f"search ({type(exc).__name__}: {exc})") from None


def _early_stopping(args: dict[str, Any]) -> dict[str, Any]:
    """The config's ``early_stopping`` object from --early-stopping, --checkpoints, --margin."""
    rule: dict[str, Any] = {}
    if args.get("early_stopping") is not None:
        rule["enabled"] = args["early_stopping"]
    if args.get("checkpoints") is not None:
        try:
            rule["checkpoints"] = [int(e) for e in args["checkpoints"].split(",") if e.strip()]
        except ValueError:
            raise _Usage(f"--checkpoints: got {args['checkpoints']!r}; expected epochs "
                         "separated by commas, e.g. 4,8") from None
    if args.get("margin") is not None:
        rule["margin"] = args["margin"]
    return {"early_stopping": rule} if rule else {}


def _prepare(args: dict[str, Any]) -> tuple[SearchConfig, Splits]:
    objectives = [o.strip() for o in args["objectives"].split(",") if o.strip()]
    space = _read_space(args["space"])
    config = parse_config({
        "dataset": args["dataset"], **({} if space is None else {"space": space}),
        "objectives": objectives, "n_trials": args["trials"], "sampler": args["sampler"],
        "seed": args["seed"], "max_params": args["max_params"],
        "warm_start": _read_warm_start(args["warm_start"]),
        **_early_stopping(args),
    })
    data_dir = args["data_dir"]
    splits = split_dataset(load_dataset(config.dataset, path=data_dir),
                           seed=config.seed if config.seed is not None else 0)
    return config.with_data(splits), splits


def _front_table(members: list[engine.FrontMember]) -> Table:
    table = Table(title=f"Pareto front ({len(members)} architectures)")
    for name, justify in (("trial", "right"), ("val acc", "right"), ("test acc", "right"),
                          ("params", "right"), ("layers (kind x multiplier)", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in report.front_rows(members):
        table.add_row(*row)
    return table


def _line(outcome: TrialOutcome) -> str:
    """One progress line for a trial, whatever happened to it."""
    if outcome.state in ("duplicate", "refused"):
        return f"trial {outcome.number}: {outcome.state} ({outcome.reason}) " + \
            report.describe(outcome.spec_json)
    extra = "" if outcome.feasible else " (over max_params)"
    if outcome.state == "stopped_early":
        extra += f" [{outcome.reason}]"
    return (f"trial {outcome.number}: {outcome.state} val {outcome.val_accuracy:.4f} "
            f"params {outcome.params:,}{extra} ({outcome.train_seconds:.1f} s) "
            f"{report.describe(outcome.spec_json)}")


def _run_trials(*, ref: StudyRef, config: SearchConfig, splits: Splits,
                reference: list[float], stop: _Stop, console: Console,
                weights: dict[int, bytes]) -> tuple[int, str | None]:
    """Train ``config.n_trials`` trials (fewer after Ctrl-C or when the space is used up);
    duplicates and refusals are settled on the way without training and not counted.
    Returns (trials trained, why the search ended early or None). ``weights`` ends holding the
    safetensors bytes of this process's front members."""
    front: tuple[FrontPoint, ...] = ()
    with_macs = "macs" in config.objectives
    columns = (TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(),
               TextColumn("front {task.fields[front]}  hv {task.fields[hv]}"),
               TimeElapsedColumn())
    done = 0
    finished: str | None = None
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("search", total=config.n_trials, front=0, hv="-")

        def show(outcome: TrialOutcome) -> None:
            progress.console.print(_line(outcome), markup=False, highlight=False,
                                   soft_wrap=True)

        while done < config.n_trials and not stop.after_trial:
            found = engine.next_trial(ref=ref, config=config)
            for skipped in found.skipped:
                assert skipped.skip is not None  # next_trial returns settled tickets only
                show(skipped.skip)
            if found.ticket is None:
                finished = found.finished
                break
            outcome: TrialOutcome = engine.run_ticket(
                ticket=found.ticket, config=config, splits=splits,
                on_epoch=lambda _: not stop.now)
            engine.tell(ref=ref, outcome=outcome)
            done += 1
            if outcome.state == "complete" and outcome.feasible:
                point = FrontPoint(number=outcome.number, accuracy=outcome.val_accuracy,
                                   params=outcome.params, macs=outcome.macs if with_macs else None)
                update = insert(front, point)
                front = update.front
                for gone in update.removed:
                    weights.pop(gone.number, None)
                if update.added and outcome.weights is not None:
                    weights[outcome.number] = outcome.weights
            hv = hypervolume(front, reference) if front else 0.0
            progress.update(task, advance=1, front=len(front), hv=f"{hv:.4f}")
            show(outcome)
    return done, finished


def search(
    dataset: str = typer.Option("digits", help="digits (built in), mnist, fashion-mnist, "
                                "cifar10, cifar100 or npz"),
    trials: int = typer.Option(40, help="trials to train in this process (duplicates and "
                               "refusals are not trained and not counted)"),
    space: Path | None = typer.Option(None, help="search space file (JSON or YAML)"),
    sampler: str = typer.Option("tpe", help="tpe, nsga2 or random"),
    seed: int | None = typer.Option(None, help="makes a single-process search reproducible"),
    max_params: int | None = typer.Option(None, help="constraint: at most this many parameters"),
    storage: str | None = typer.Option(None, help="Optuna storage URL (default: a SQLite file "
                                       "in --out)"),
    study_name: str | None = typer.Option(None, help="study name (default: from --out)"),
    out: Path | None = typer.Option(None, help="output folder (default runs/<timestamp>)"),
    data_dir: Path | None = typer.Option(None, help="where an on-disk dataset lives"),
    objectives: str = typer.Option("accuracy,params", help="accuracy,params or "
                                   "accuracy,params,macs"),
    warm_start: Path | None = typer.Option(None, help="a previous front.json: its "
                                           "architectures run first"),
    onnx: bool = typer.Option(False, "--onnx", help="also write each front member as ONNX "
                              "(models/trial-N.onnx)"),
    early_stopping: bool | None = typer.Option(None, "--early-stopping/--no-early-stopping",
                                               help="Pareto-aware early stopping (default: "
                                               "see README)"),
    checkpoints: str | None = typer.Option(None, help="early-stopping epochs, e.g. 4,8 "
                                           "(default: every epoch from a third of training)"),
    margin: float | None = typer.Option(None, help="early stopping: accuracy a trial may lag "
                                        "its neighbour by (0..1)"),
) -> None:
    """Search for accuracy / parameter-count Pareto-optimal architectures."""
    errors = Console(stderr=True)
    try:
        config, splits = _prepare({
            "dataset": dataset, "space": space, "objectives": objectives, "trials": trials,
            "sampler": sampler, "seed": seed, "max_params": max_params, "data_dir": data_dir,
            "warm_start": warm_start, "early_stopping": early_stopping,
            "checkpoints": checkpoints, "margin": margin,
        })
        reference = engine.reference_point(config)
    except (_Usage, SearchError, SpecError) as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    out_dir = out or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    ref = StudyRef(storage_url=storage or f"sqlite:///{(out_dir / 'optuna.db').resolve()}",
                   study_name=study_name or f"search-{out_dir.resolve().name}")
    engine.create_study(ref=ref, config=config)
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    retain_freed_memory()  # this process trains: keep freed tensor memory (search/heap.py)
    stop = _Stop()
    previous = signal.signal(signal.SIGINT, stop)
    started = time.perf_counter()
    weights: dict[int, bytes] = {}
    try:
        done, finished = _run_trials(ref=ref, config=config, splits=splits,
                                     reference=reference, stop=stop, console=errors,
                                     weights=weights)
    finally:
        signal.signal(signal.SIGINT, previous)
    members = engine.front(ref=ref, config=config)
    records = engine.trials(ref=ref)
    points = [FrontPoint(number=m.number, accuracy=m.val_accuracy, params=m.params,
                         macs=m.macs if "macs" in config.objectives else None) for m in members]
    hv = hypervolume(points, reference) if points else 0.0
    report.write_front_json(out_dir / report.FRONT_JSON, members=members,
                            config=config.to_dict(), reference=reference, hypervolume=hv,
                            trials_done=done, interrupted=stop.after_trial,
                            finished=finished)
    report.write_trials_csv(out_dir / report.TRIALS_CSV, records)
    report.plot_front(out_dir / report.PARETO_PNG, records=records, members=members,
                      title=f"{config.dataset}: {done} trials trained, {len(members)} on the front")
    _, absent = write_front_models(out_dir, members=members, weights=weights, onnx=onnx)
    if absent:
        errors.print(f"note: front members {absent} were trained by another process sharing "
                     "the storage; their weights are not in this folder", markup=False,
                     highlight=False, soft_wrap=True)
    console = Console()
    console.print(_front_table(members))
    console.print(
        f"{done} trials in {time.perf_counter() - started:.1f} s"
        f"{' (interrupted)' if stop.after_trial else ''}; front {len(members)}, "
        f"hypervolume {hv:.4f} (reference {reference})"
        f"{'' if finished is None else '; ended early: ' + finished}; wrote {out_dir}/"
        f"{{{report.FRONT_JSON},{report.TRIALS_CSV},{report.PARETO_PNG},{MODELS_DIR}/}}",
        markup=False, highlight=False, soft_wrap=True,
    )
    if stop.after_trial:
        raise typer.Exit(EXIT_INTERRUPTED)
