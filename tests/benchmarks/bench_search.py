"""Acceptance benchmark (not a CI test): a 40-trial search on digits against two baselines.

Runs the default space and settings (TPE, SQLite storage in a temporary folder, the default
training budget) and, with the same budget and split, the two named baselines of the default
depth: every layer full at multiplier 1, and every layer (and the classifier) bilinear at
multiplier 1. Prints the search time (and its ratio to one full-baseline training), the baselines'
accuracies and parameter counts, and the smallest front member within ``--tolerance`` of the full
baseline's validation accuracy with its parameter ratio. Targets: under 5 minutes on 2 cores and
a qualifying member with at most 10% of the full baseline's parameters.

    PYTHONPATH=. python tests/benchmarks/bench_search.py [--trials 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from models.spec import ArchSpec, LayerSpec
from search import engine
from search.config import SearchConfig, parse_config
from search.datasets import Splits, load_dataset, split_dataset
from search.heap import retain_freed_memory
from search.records import FrontMember, StudyRef, TrialOutcome, TrialTicket
from search.report import describe

TIME_TARGET_S = 300.0
PARAMS_TARGET = 0.10


def _baseline(kind: str, config: SearchConfig, splits: Splits) -> tuple[TrialOutcome, float]:
    depth = max(config.space.depths)
    classifier = "bilinear" if kind == "bilinear" else "full"
    spec = ArchSpec(input_shape=splits.input_shape, num_classes=splits.num_classes,
                    base_channels=config.space.base_channels,
                    layers=tuple(LayerSpec(kind=kind, multiplier=1.0) for _ in range(depth)),
                    classifier=LayerSpec(kind=classifier))
    started = time.perf_counter()
    outcome = engine.run_ticket(ticket=TrialTicket(number=0, params={}, spec_json=spec.to_json()),
                                config=config, splits=splits)
    return outcome, time.perf_counter() - started


def _search(config: SearchConfig, splits: Splits, folder: Path) -> tuple[list[FrontMember], float]:
    ref = StudyRef(storage_url=f"sqlite:///{folder / 'optuna.db'}", study_name="bench")
    started = time.perf_counter()
    engine.create_study(ref=ref, config=config)
    for _ in range(config.n_trials):
        ticket = engine.ask(ref=ref, config=config)
        engine.tell(ref=ref, outcome=engine.run_ticket(ticket=ticket, config=config,
                                                       splits=splits))
    elapsed = time.perf_counter() - started
    return engine.front(ref=ref, config=config), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=0.01, help="accuracy (fraction)")
    args = parser.parse_args()
    retain_freed_memory()  # as `paretonas search` does

    splits = split_dataset(load_dataset("digits"), seed=args.seed)
    config = parse_config({"n_trials": args.trials, "seed": args.seed}).with_data(splits)
    full, full_s = _baseline("full", config, splits)
    bilinear, bilinear_s = _baseline("bilinear", config, splits)
    with tempfile.TemporaryDirectory() as folder:
        members, search_s = _search(config, splits, Path(folder))

    print(f"digits, default space, {config.sampler} sampler, seed {args.seed}, "
          f"training {config.train.epochs}+{config.train.finetune_epochs} epochs")
    for name, outcome, seconds in (("all-full", full, full_s),
                                   ("all-bilinear", bilinear, bilinear_s)):
        print(f"baseline {name:<13} val {outcome.val_accuracy:.4f}  test "
              f"{outcome.test_accuracy:.4f}  params {outcome.params:>9,}  "
              f"({seconds:.1f} s)  {describe(outcome.spec_json)}")
    print(f"search: {args.trials} trials in {search_s:.1f} s "
          f"({search_s / full_s:.1f}x one all-full training; target < {TIME_TARGET_S:.0f} s: "
          f"{'met' if search_s < TIME_TARGET_S else 'MISSED'}), front of {len(members)}:")
    for m in members:
        print(f"  trial {m.number:>3}  val {m.val_accuracy:.4f}  test {m.test_accuracy:.4f}  "
              f"params {m.params:>9,}  {describe(m.spec_json)}")
    floor = full.val_accuracy - args.tolerance
    qualifying = [m for m in members if m.val_accuracy >= floor]
    if not qualifying:
        print(f"no front member reaches val {floor:.4f} (all-full baseline - {args.tolerance})")
        return
    best = min(qualifying, key=lambda m: m.params)
    ratio = best.params / full.params
    print(f"smallest member within {args.tolerance:.2%} of the all-full baseline: trial "
          f"{best.number}, val {best.val_accuracy:.4f} (baseline {full.val_accuracy:.4f}), "
          f"params {best.params:,} = {ratio:.2%} of {full.params:,} "
          f"(target <= {PARAMS_TARGET:.0%}: {'met' if ratio <= PARAMS_TARGET else 'MISSED'}); "
          f"vs all-bilinear: {best.params / bilinear.params:.2f}x its params")


if __name__ == "__main__":
    main()
