"""What a finished (or interrupted) search leaves behind: front.json, trials.csv, pareto.png.

>>> from models.spec import ArchSpec, LayerSpec
>>> spec = ArchSpec(input_shape=(1, 8, 8), num_classes=10,
...                 layers=(LayerSpec(kind="bilinear", multiplier=0.5), LayerSpec(kind="full")))
>>> describe(spec.to_json())
'bilinear x0.5, full x1 | classifier full'
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.spec import ArchSpec
from search.records import FrontMember, TrialRecord

__all__ = ["FRONT_JSON", "PARETO_PNG", "TRIALS_CSV", "describe", "front_rows", "plot_front",
           "write_front_json", "write_trials_csv"]

FRONT_JSON = "front.json"
TRIALS_CSV = "trials.csv"
PARETO_PNG = "pareto.png"
TRIAL_COLUMNS = ("number", "state", "val_accuracy", "test_accuracy", "params", "macs",
                 "feasible", "train_seconds", "architecture", "trial_params", "reason",
                 "duplicate_of", "stopped_epoch", "lost_to")


def _multiplier(value: float) -> str:
    return f"x{value:g}"


def describe(spec_json: str) -> str:
    """Per-layer kinds and multipliers of an architecture, e.g. ``full x1, bilinear x0.5``;
    a trained low-rank layer shows its kept rank (``lowrank r12 x1``)."""
    spec = ArchSpec.from_json(spec_json)

    def kind(name: str, rank: int | None) -> str:
        return f"{name} r{rank}" if name == "lowrank" and rank is not None else name

    parts = [f"conv {kind(c.kind, c.rank)} {_multiplier(c.multiplier)}" for c in spec.convs]
    parts += [f"{kind(layer.kind, layer.rank)} {_multiplier(layer.multiplier)}"
              for layer in spec.layers]
    head = ", ".join(parts) if parts else "no hidden layers"
    return f"{head} | classifier {kind(spec.classifier.kind, spec.classifier.rank)}"


def front_rows(members: Sequence[FrontMember]) -> list[tuple[str, ...]]:
    """Table rows (trial, val acc, test acc, params, architecture), by parameters."""
    return [
        (str(m.number), f"{m.val_accuracy:.4f}", f"{m.test_accuracy:.4f}", f"{m.params:,}",
         describe(m.spec_json))
        for m in members
    ]


def write_front_json(
    path: Path,
    *,
    members: Sequence[FrontMember],
    config: dict[str, Any],
    reference: Sequence[float],
    hypervolume: float,
    trials_done: int,
    interrupted: bool,
    finished: str | None = None,
) -> None:
    """The front with everything needed to read it again (and warm-start a search from it).
    ``trials_done`` counts trained trials; ``finished`` says why the search ended before
    ``n_trials`` of them (e.g. every architecture of the space is done), else null."""
    document = {
        "config": config,
        "reference_point": list(reference),
        "hypervolume": hypervolume,
        "trials_done": trials_done,
        "interrupted": interrupted,
        "finished_early": finished,
        "front": [{**m.to_dict(), "spec": json.loads(m.spec_json)} for m in members],
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def write_trials_csv(path: Path, records: Sequence[TrialRecord]) -> None:
    """One row per trial (every state), in trial order."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRIAL_COLUMNS)
        for r in records:
            writer.writerow([
                r.number, r.state, r.val_accuracy, r.test_accuracy, r.params, r.macs, r.feasible,
                r.train_seconds, describe(r.spec_json) if r.spec_json else "",
                json.dumps(r.trial_params, sort_keys=True), r.reason or "",
                "" if r.duplicate_of is None else r.duplicate_of,
                "" if r.stopped_epoch is None else r.stopped_epoch,
                "" if r.lost_to is None else r.lost_to,
            ])


def plot_front(path: Path, *, records: Sequence[TrialRecord], members: Sequence[FrontMember],
               title: str) -> None:
    """Validation accuracy against parameters (log x): every complete trial grey, the front
    highlighted and joined as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    feasible: list[tuple[int, float]] = []
    infeasible: list[tuple[int, float]] = []
    for r in records:
        if r.state == "complete" and r.params and r.val_accuracy is not None:
            (infeasible if r.feasible is False else feasible).append((r.params, r.val_accuracy))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        ax.scatter([p for p, _ in feasible], [a for _, a in feasible], s=18, color="0.65",
                   label="trials")
        if infeasible:
            ax.scatter([p for p, _ in infeasible], [a for _, a in infeasible], s=18,
                       color="0.65", marker="x", label="over max_params")
        if members:
            xs = [m.params for m in members]
            ys = [m.val_accuracy for m in members]
            ax.step(xs, ys, where="post", color="tab:red", linewidth=1.2)
            ax.scatter(xs, ys, s=36, color="tab:red", zorder=3, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("parameters (after pruning)")
        ax.set_ylabel("validation accuracy")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
