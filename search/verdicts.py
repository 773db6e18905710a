"""What a study's finished trials decide about a new trial before it trains (one place, for the
CLI and the service workers alike):

- duplicate: its architecture and training config (``arch_key``) equal those of a finished trial
  (complete, stopped early or refused; never a failed or interrupted one): it is not trained, it
  is told with that trial's values and recorded as its duplicate.
- refused: with ``max_params`` set, it cannot end with that few parameters (``min_params``: exact
  for full and bilinear layers, low-rank layers at rank 1): it is not trained, the reason is
  recorded, and it is told infeasible (accuracy 0, its parameter count) so samplers avoid it.
- baseline: its early-stopping neighbour (``search.early_stop``) among the complete, feasible
  trials that have no more parameters (and, with the macs objective, no more MACs).
"""

from __future__ import annotations

import hashlib
import json

from optuna.trial import FrozenTrial, TrialState

from models import count_macs, count_params
from models.spec import ArchSpec
from search.config import SearchConfig
from search.early_stop import Finished, choose_baseline
from search.records import Baseline, TrialOutcome
from search.space.extent import at_rank_one, min_params
from search.study import UserAttr, to_record

__all__ = ["arch_key", "baseline", "finished_keys", "pre_verdict"]

_ORIGINALS = ("complete", "stopped_early", "refused")


def arch_key(spec: ArchSpec, config: SearchConfig) -> str:
    """sha256 of the decoded architecture and the training config: equal keys train alike."""
    data = json.dumps({"spec": json.loads(spec.to_json()), "train": config.train.to_dict()},
                      sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


def _originals(trials: list[FrozenTrial]) -> dict[str, FrozenTrial]:
    """The first finished, non-duplicate trial of each architecture key."""
    found: dict[str, FrozenTrial] = {}
    for trial in trials:
        key = trial.user_attrs.get(UserAttr.ARCH_KEY)
        if key is None or key in found or trial.state != TrialState.COMPLETE:
            continue
        if to_record(trial).state in _ORIGINALS:
            found[key] = trial
    return found


def finished_keys(trials: list[FrozenTrial]) -> int:
    """How many distinct architectures the study has finished (trained, stopped or refused)."""
    return len(_originals(trials))


def _min_macs(spec: ArchSpec) -> int:
    return count_macs(at_rank_one(spec))


def pre_verdict(*, trials: list[FrozenTrial], number: int, key: str, spec: ArchSpec,
                config: SearchConfig) -> TrialOutcome | None:
    """The outcome of trial ``number`` decided without training, or None: train it."""
    if config.skip_duplicates:
        original = _originals(trials).get(key)
        if original is not None:
            record = to_record(original)
            assert original.values is not None and record.spec_json is not None
            return TrialOutcome(
                number=number, state="duplicate", values=tuple(original.values),
                val_accuracy=record.val_accuracy or 0.0,
                test_accuracy=record.test_accuracy or 0.0, params=record.params or 0,
                macs=record.macs or 0, feasible=bool(record.feasible), train_seconds=0.0,
                spec_json=record.spec_json, excess=_excess(record.params or 0, config),
                reason=f"same architecture and training config as trial {original.number} "
                       f"({record.state}); not trained again",
                duplicate_of=original.number, stopped_epoch=record.stopped_epoch,
                lost_to=record.lost_to, curve=record.curve,
            )
    if config.max_params is not None:
        fewest = min_params(spec)
        if fewest > config.max_params:
            exact = fewest == count_params(spec)
            low_rank = "" if exact else " (low-rank layers counted at rank 1)"
            values: tuple[float, ...] = (0.0, float(fewest))
            if "macs" in config.objectives:
                values = (*values, float(_min_macs(spec)))
            return TrialOutcome(
                number=number, state="refused", values=values, val_accuracy=0.0,
                test_accuracy=0.0, params=fewest, macs=_min_macs(spec), feasible=False,
                train_seconds=0.0, spec_json=spec.to_json(), excess=fewest - config.max_params,
                reason=f"not trained: it has at least {fewest} parameters{low_rank}, over "
                       f"max_params={config.max_params}",
            )
    return None


def _excess(params: int, config: SearchConfig) -> int | None:
    return None if config.max_params is None else params - config.max_params


def baseline(*, trials: list[FrozenTrial], spec: ArchSpec, config: SearchConfig
             ) -> Baseline | None:
    """The early-stopping neighbour of a trial of ``spec`` (None: early stopping is off, or no
    finished trial has fewer parameters)."""
    if not config.early_stopping.enabled:
        return None
    with_macs = "macs" in config.objectives
    fewest = min_params(spec)
    fewest_macs = _min_macs(spec) if with_macs else 0
    finished = []
    for trial in trials:
        record = to_record(trial)
        if (record.state != "complete" or not record.feasible or record.params is None
                or record.val_accuracy is None):
            continue
        if with_macs and (record.macs is None or record.macs > fewest_macs):
            continue
        finished.append(Finished(number=record.number, accuracy=record.val_accuracy,
                                 params=record.params, curve=record.curve))
    return choose_baseline(finished, min_params=fewest)
