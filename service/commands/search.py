"""`paretonas search`: run a search in this process and write its front, trials and plot.

    paretonas search --dataset digits --trials 40 [--space space.json|yaml] [--sampler tpe]
        [--seed 0] [--max-params 50000] [--storage URL] [--study-name NAME] [--out DIR]
        [--resume] [--data-dir PATH] [--objectives accuracy,params[,macs]]
        [--warm-start previous/front.json] [--onnx]
        [--early-stopping/--no-early-stopping] [--checkpoints 4,8] [--margin 0.02]

Every argument is checked before torch, Optuna or the data load (``search_args``: about a
second instead of several): a bad one prints one line naming the flag and exits 2; so does a
``--storage`` SQLAlchemy cannot use or reach (3 s connect timeout). Errors nobody expected are
one line and exit 1 (``service.cli.main``).

``--out`` holds one search: ``run.json`` (written before the first trial) names its study and
storage. A folder holding an earlier search is refused unless ``--resume`` is given; then the
study is the one run.json names (a copied folder continues its own copy), the other flags must
describe the same search (``search_run``), and trials a killed earlier process left RUNNING are
failed first. A trial an error interrupts is told FAIL: no path leaves one RUNNING.

``--trials`` counts trained trials: a proposed architecture that is already done is a duplicate
(not trained, not counted) and one over --max-params is refused before training; a space with
fewer distinct architectures ends when all are done, saying so.

A progress bar shows trials done, the current front size and hypervolume. At the end (or after
Ctrl-C: the first stops after the current trial, a second one stops it at its next epoch; SIGTERM
stops it at its next epoch too) the front
is printed as a table and front.json, trials.csv, pareto.png and the front members' models
(models/trial-N.safetensors, and .onnx with --onnx) are written into --out (trials.csv holds
every trial of the study, a resumed search's earlier ones too); an interrupted search exits 130
(143 after SIGTERM) after writing its results; no trial is left RUNNING.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from models.errors import SpecError
from search import report
from search.bounds import reference_point
from search.config import SearchConfig, parse_config
from search.errors import SearchError
from search.front_files import MODELS_DIR
from search.pareto import FrontPoint, hypervolume, insert
from search.records import FrontMember, StudyRef, TrialOutcome
from service.commands.search_args import (
    Usage,
    check_data_dir,
    check_storage,
    flag_message,
    parse_args,
)
from service.commands.search_run import (
    SHARED,
    Run,
    check_nothing_lost,
    check_out,
    compare,
    folder_or_storage,
    hold_folder,
    plan_run,
    releasing_folders,
    study_present,
    undone_on_refusal,
    write_run,
)

if TYPE_CHECKING:
    from search.datasets import Splits

__all__ = ["search"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


@dataclass
class _Stop:
    """Ctrl-C state: first press finishes the current trial, the second stops it now. SIGTERM
    (a scheduler or `kill` ending the search) stops it now: the trial in flight is told as
    stopped at its next epoch and the results are written, so no trial is left RUNNING."""

    after_trial: bool = False
    now: bool = False
    terminated: bool = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.after_trial:
            self.now = True
        self.after_trial = True

    def terminate(self, signum: int, frame: FrameType | None) -> None:
        self.after_trial = self.now = self.terminated = True


def _check(args: dict[str, Any]) -> tuple[SearchConfig, Run]:
    """Every argument, before torch, Optuna or the data: the config the flags describe (its
    space checked against the dataset's shape where the format fixes one) and the study it runs
    in. Raises Usage (one line naming the flag)."""
    config = parse_args(args)
    check_data_dir(config.dataset, args["data_dir"])
    if config.input_shape is not None or config.dataset != "npz":
        try:
            reference_point(config)
        except (SearchError, SpecError) as exc:
            raise Usage(flag_message(exc)) from None
    storage = None if args["storage"] is None else check_storage(args["storage"])
    out = args["out"]
    if args["resume"] and out is None:
        raise Usage("--resume: name the folder of the search to continue with --out")
    out_dir = out or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    check_out(out_dir)
    run = plan_run(out_dir=out_dir, resume=args["resume"], storage=storage,
                   study_name=args["study_name"], config=config)
    if out_dir.is_dir():  # a folder another search is using: refused now, not after the data
        hold_folder(out_dir)
    return config, run


def _load(config: SearchConfig, data_dir: Path | None) -> tuple[SearchConfig, Splits, list[float]]:
    """The data (split), the config with its shape, the hypervolume reference point."""
    from search.datasets import load_dataset, split_dataset

    try:
        splits = split_dataset(load_dataset(config.dataset, path=data_dir),
                               seed=config.seed if config.seed is not None else 0)
    except SearchError as exc:  # the data itself: its messages start with the file's name
        text = " ".join(str(exc).split()).removeprefix("path: ")
        raise Usage(f"--data-dir: {text}") from None
    try:
        config = config.with_data(splits)
        return config, splits, reference_point(config)
    except (SearchError, SpecError) as exc:  # the space against the data's shape
        text = flag_message(exc)
        raise Usage(text if text.startswith("--") else f"--data-dir: {text}") from None


def _start(run: Run, config: SearchConfig, console: Console) -> StudyRef:
    """Create (or open) the study, check a study it joins holds the same search, write
    run.json/config.json, and fail what a killed earlier process left running."""
    from sqlalchemy.exc import SQLAlchemyError

    from search import engine

    ref = StudyRef(storage_url=run.storage_url, study_name=run.study_name)
    with undone_on_refusal(run):
        hold_folder(run.out_dir)
        if run.resumed and not study_present(run, exists=lambda: engine.study_exists(ref=ref)):
            check_nothing_lost(run)  # stopped before its first trial: the study starts now
        if run.stored_storage is None:  # before optuna.db: a folder with one has run.json
            write_run(run, config)
        try:
            engine.create_study(ref=ref, config=config)
            stored = engine.study_config(ref=ref)
            if stored is not None:
                compare(parse_config(stored), config, origin=f"study {run.study_name!r}",
                        joiner="a search joining it", only=SHARED)
        except SearchError as exc:
            raise Usage(flag_message(exc)) from None
        except SQLAlchemyError as exc:
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
            where = "--out" if run.stored_storage is None else "--storage"
            raise Usage(f"{where}: cannot open the study in {folder_or_storage(run)} "
                        f"({reason})") from None
        if run.stored_storage is not None:  # a shared study: recorded once it is checked
            write_run(run, config)
    if run.resumed:  # the folder's own optuna.db is this run's alone; a shared one is not
        owner = None if run.stored_storage is None else run.run_id
        failed = engine.fail_running(ref=ref, owner=owner, reason=(
            "left running by an earlier process that stopped; failed by --resume"))
        if failed:
            which = (f"trial {failed[0]} was" if len(failed) == 1 else
                     f"trials {', '.join(map(str, failed))} were")
            console.print(f"note: {which} left running by an earlier process that stopped; "
                          "marked failed", markup=False, highlight=False, soft_wrap=True)
    return ref


def _front_table(members: list[FrontMember]) -> Table:
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


def _run_trials(*, ref: StudyRef, run: Run, config: SearchConfig, splits: Splits,
                reference: list[float], stop: _Stop, console: Console,
                weights: dict[int, bytes]) -> tuple[int, str | None]:
    """Train ``config.n_trials`` trials (fewer after Ctrl-C or when the space is used up);
    duplicates and refusals are settled on the way without training and not counted.
    Returns (trials trained, why the search ended early or None). ``weights`` ends holding the
    safetensors bytes of this process's front members. A trial an error interrupts is told
    FAIL before the error goes on: the study keeps no RUNNING trial of a live process."""
    from search import engine

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
            found = engine.next_trial(ref=ref, config=config, owner=run.run_id)
            for skipped in found.skipped:
                assert skipped.skip is not None  # next_trial returns settled tickets only
                show(skipped.skip)
            if found.ticket is None:
                finished = found.finished
                break
            try:
                outcome = engine.run_ticket(ticket=found.ticket, config=config, splits=splits,
                                            on_epoch=lambda _: not stop.now)
                engine.tell(ref=ref, outcome=outcome)
            except BaseException as exc:
                with contextlib.suppress(Exception):  # the error itself matters more
                    engine.fail(ref=ref, number=found.ticket.number,
                                reason=" ".join(f"{type(exc).__name__}: {exc}".split())[:400])
                raise
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


@releasing_folders
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
    study_name: str | None = typer.Option(None, help="study name (default: search-<--out "
                                          "folder name>)"),
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
    resume: bool = typer.Option(False, "--resume", help="continue the search in --out (its "
                                "run.json names the study); the other flags must match it"),
) -> None:
    """Search for accuracy / parameter-count Pareto-optimal architectures."""
    errors = Console(stderr=True)
    try:
        config, run = _check({
            "dataset": dataset, "space": space, "objectives": objectives, "trials": trials,
            "sampler": sampler, "seed": seed, "max_params": max_params, "data_dir": data_dir,
            "warm_start": warm_start, "early_stopping": early_stopping,
            "checkpoints": checkpoints, "margin": margin, "storage": storage,
            "study_name": study_name, "out": out, "resume": resume,
        })
        config, splits, reference = _load(config, data_dir)
        ref = _start(run, config, errors)
    except Usage as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    from search import engine
    from search.front_files import write_front_models
    from search.heap import retain_freed_memory

    out_dir = run.out_dir
    retain_freed_memory()  # this process trains: keep freed tensor memory (search/heap.py)
    stop = _Stop()
    previous = signal.signal(signal.SIGINT, stop)
    previous_term = signal.signal(signal.SIGTERM, stop.terminate)
    started = time.perf_counter()
    weights: dict[int, bytes] = {}
    try:
        done, finished = _run_trials(ref=ref, run=run, config=config, splits=splits,
                                     reference=reference, stop=stop, console=errors,
                                     weights=weights)
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
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
        raise typer.Exit(EXIT_TERMINATED if stop.terminated else EXIT_INTERRUPTED)
