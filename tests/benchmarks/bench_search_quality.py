"""Search quality against random search (issue 16; not a CI test).

Runs the same trained-trial budget on two tasks with five methods, several seeds each:

- ``random``, ``tpe``, ``nsga2``: the samplers as they were before issue 16 (every proposal is
  trained, duplicates included; no early stopping);
- ``tpe+dedup``: TPE with duplicate skipping only (to isolate what early stopping adds);
- ``default``: TPE with duplicate skipping and Pareto-aware early stopping (the default rule).

Tasks: ``digits`` (accuracy close to saturated) and ``noisy-digits`` (digits with Gaussian noise
of 1.5 standard deviations added to the normalised pixels, and 20% of the training labels
shuffled: accuracies stay well below 1, so capacity matters). Space: the default space's shape
(a depth-2 MLP, full / bilinear on both layers) with multipliers 0.25..1 and without the low-rank
kind (36 architectures), so a run fits the machine (x2 layers and SVD training cost the most).

Printed per task and method: mean and spread (min..max over seeds) of the final hypervolume (one
reference point per task: accuracy 0 and the largest architecture's parameters), the hypervolume
at random search's total wall time (per seed), the fraction of random's wall time each method
needed to reach random's final hypervolume, total training seconds, trials stopped early and
duplicates skipped. Targets: ``default`` beats ``random`` at equal trials, and reaches random's
final hypervolume in at most 50% of its wall time.

Time is this process's CPU time (``time.process_time``), the search loop's whole cost (ask, train,
tell): trials train on one thread, so on a dedicated machine it is the wall time, while on a
shared one wall-clock time mostly measures the neighbours' load.

Sized for a 2-core machine shared by ~7 engineers (one full run must take at most ~20 minutes):
the defaults are 16 trials, 6 epochs, 3 seeds and the four methods of the issue (the issue
suggests 60 trials x 3 seeds; pass ``--trials 60`` and ``--methods`` with ``tpe+dedup`` where the
machine allows). Timings on a shared machine are noisy: compare the
methods within one run, never across runs.

    PYTHONPATH=. nice python tests/benchmarks/bench_search_quality.py [--trials 16] \
        [--epochs 6] [--seeds 3] [--tasks digits,noisy-digits] [--methods random,tpe,...]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from search import engine
from search.config import SearchConfig, parse_config
from search.datasets import Splits, load_dataset, split_dataset
from search.heap import retain_freed_memory
from search.pareto import FrontPoint, hypervolume, insert
from search.records import StudyRef
from search.study import MEMORY_URL

SPACE = {"backbone": "mlp", "depth": 2, "base_channels": 16, "kinds": ["full", "bilinear"],
         "multipliers": [0.25, 0.5, 1], "classifier_kinds": ["full"]}
METHODS: dict[str, dict[str, Any]] = {
    "random": {"sampler": "random", "skip_duplicates": False, "early_stopping": False},
    "tpe": {"sampler": "tpe", "skip_duplicates": False, "early_stopping": False},
    "nsga2": {"sampler": "nsga2", "skip_duplicates": False, "early_stopping": False},
    "tpe+dedup": {"sampler": "tpe", "skip_duplicates": True, "early_stopping": False},
    "default": {},  # the defaults of search.config: TPE, duplicate skipping, early stopping
}
TIME_FRACTION_TARGET = 0.5


@dataclass
class Run:
    """One search: the hypervolume after each trained trial against the time so far (CPU
    seconds of this single-threaded loop: its wall time on a dedicated machine)."""

    times: list[float]
    volumes: list[float]
    train_seconds: float
    stopped: int
    duplicates: int

    @property
    def final(self) -> float:
        return self.volumes[-1] if self.volumes else 0.0

    @property
    def wall(self) -> float:
        return self.times[-1] if self.times else 0.0

    def volume_at(self, seconds: float) -> float:
        """The hypervolume reached within ``seconds`` of wall time."""
        reached = [v for t, v in zip(self.times, self.volumes, strict=True) if t <= seconds]
        return reached[-1] if reached else 0.0

    def time_to(self, volume: float) -> float | None:
        """The wall time at which the hypervolume first reached ``volume`` (None: never)."""
        for t, v in zip(self.times, self.volumes, strict=True):
            if v >= volume - 1e-12:
                return t
        return None


def noisy(splits: Splits, *, seed: int) -> Splits:
    """``splits`` with Gaussian pixel noise on every part and 20% of training labels shuffled."""
    rng = np.random.default_rng(seed)

    def blur(x: np.ndarray) -> np.ndarray:
        return (x + rng.normal(0.0, 1.5, size=x.shape)).astype(np.float32)

    y = splits.train.y.copy()
    flip = rng.random(y.shape[0]) < 0.2
    y[flip] = rng.integers(0, splits.num_classes, size=int(flip.sum()))
    return replace(
        splits,
        train=replace(splits.train, x=blur(splits.train.x), y=y),
        val=replace(splits.val, x=blur(splits.val.x)),
        test=replace(splits.test, x=blur(splits.test.x)),
    )


def run_search(config: SearchConfig, splits: Splits, reference: list[float]) -> Run:
    """A CLI-like search loop in memory: ``config.n_trials`` trained trials (or fewer when the
    space is used up), timed from the first ask."""
    ref = StudyRef(storage_url=MEMORY_URL, study_name=f"bench-{uuid.uuid4().hex}")
    engine.create_study(ref=ref, config=config)
    front: tuple[FrontPoint, ...] = ()
    run = Run(times=[], volumes=[], train_seconds=0.0, stopped=0, duplicates=0)
    started = time.process_time()
    while len(run.times) < config.n_trials:
        found = engine.next_trial(ref=ref, config=config)
        run.duplicates += sum(t.skip is not None and t.skip.state == "duplicate"
                              for t in found.skipped)
        if found.ticket is None:
            break
        outcome = engine.run_ticket(ticket=found.ticket, config=config, splits=splits)
        engine.tell(ref=ref, outcome=outcome)
        run.train_seconds += outcome.train_seconds
        run.stopped += outcome.state == "stopped_early"
        if outcome.state == "complete" and outcome.feasible:
            front = insert(front, FrontPoint(number=outcome.number,
                                             accuracy=outcome.val_accuracy,
                                             params=outcome.params)).front
        run.times.append(time.process_time() - started)
        run.volumes.append(hypervolume(front, reference) if front else 0.0)
    return run


def _spread(values: list[float]) -> str:
    return (f"{statistics.fmean(values):.4f} [{min(values):.4f}..{max(values):.4f}]"
            if values else "-")


def report(task: str, runs: dict[str, list[Run]]) -> None:
    """Print one task's table (see the module doc)."""
    randoms = runs["random"]
    print(f"\n== {task} ==")
    print(f"{'method':<10} {'final hv mean [min..max]':>27} {'hv @ random wall':>27} "
          f"{'t to random hv':>16} {'train s':>8} {'cpu s':>7} {'stopped':>7} {'dups':>5}")
    for method, method_runs in runs.items():
        at_random = [r.volume_at(base.wall) for r, base in zip(method_runs, randoms, strict=True)]
        fractions = []
        for r, base in zip(method_runs, randoms, strict=True):
            reached = r.time_to(base.final)
            fractions.append(None if reached is None or base.wall == 0 else reached / base.wall)
        got = [f for f in fractions if f is not None]
        reach = (f"{statistics.fmean(got):.2f} ({len(got)}/{len(fractions)})" if got
                 else f"never (0/{len(fractions)})")
        print(f"{method:<10} {_spread([r.final for r in method_runs]):>27} "
              f"{_spread(at_random):>27} {reach:>16} "
              f"{sum(r.train_seconds for r in method_runs):>8.1f} "
              f"{sum(r.wall for r in method_runs):>7.1f} "
              f"{sum(r.stopped for r in method_runs):>7} "
              f"{sum(r.duplicates for r in method_runs):>5}")
    if "default" not in runs or "random" not in runs:
        return
    default, rand = runs["default"], runs["random"]
    wins = sum(d.final > r.final for d, r in zip(default, rand, strict=True))
    gain = statistics.fmean(d.final for d in default) - statistics.fmean(r.final for r in rand)
    fractions = [d.time_to(r.final) for d, r in zip(default, rand, strict=True)]
    ratio = [f / r.wall for f, r in zip(fractions, rand, strict=True) if f is not None]
    print(f"target 1 (default beats random at equal trials): mean hv {gain:+.4f}, better on "
          f"{wins}/{len(default)} seeds -> {'met' if gain > 0 else 'NOT met'}")
    mean_ratio = statistics.fmean(ratio) if len(ratio) == len(rand) else None
    verdict = ("met" if mean_ratio is not None and mean_ratio <= TIME_FRACTION_TARGET
               else "NOT met")
    shown = "never on some seeds" if mean_ratio is None else f"{mean_ratio:.2f}"
    print(f"target 2 (default reaches random's final hv in <= {TIME_FRACTION_TARGET:.0%} of its "
          f"wall time): {shown} -> {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default="digits,noisy-digits")
    parser.add_argument("--methods", default="random,tpe,nsga2,default")
    args = parser.parse_args()
    retain_freed_memory()
    base = split_dataset(load_dataset("digits"), seed=0)
    tasks = {"digits": base, "noisy-digits": noisy(base, seed=0)}
    print(f"bench_search_quality: {args.trials} trained trials x {args.seeds} seeds, "
          f"{args.epochs} epochs per trial, methods {args.methods}; the machine is shared "
          "(2 cores, ~7 engineers): compare methods within this run only")
    started = time.perf_counter()
    for task in args.tasks.split(","):
        splits = tasks[task]
        runs: dict[str, list[Run]] = {}
        for method in args.methods.split(","):
            runs[method] = []
            for seed in range(args.seeds):
                config = parse_config({"space": SPACE, "n_trials": args.trials, "seed": seed,
                                       "train": {"epochs": args.epochs, "batch_size": 128},
                                       **METHODS[method]})
                reference = engine.reference_point(config)
                runs[method].append(run_search(config, splits, reference))
                print(f"  {task} {method} seed {seed}: hv {runs[method][-1].final:.4f} in "
                      f"{runs[method][-1].wall:.1f} CPU s", flush=True)
        report(task, runs)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
