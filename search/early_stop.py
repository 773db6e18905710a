"""Pareto-aware early stopping: stop a trial that cannot reach the front.

A trial's parameter count is known (for low-rank layers: bounded below) before it trains, so it
only matters if it beats the best accuracy already reached by a finished trial with no more
parameters: its staircase neighbour on the front. At each checkpoint epoch the trial is stopped
when its validation accuracy is below the neighbour's accuracy at the same epoch by more than
``margin``. The neighbour's per-epoch curve is stored with every finished trial (an Optuna user
attribute, so the CLI and the service workers read the same data). A trial without a neighbour
(nothing with fewer parameters has finished) is never stopped: it would join the front anyway.

>>> rule = parse_early_stopping({"checkpoints": [2], "margin": 0.05}, epochs=4)
>>> watch = Watch(rule, Baseline(number=7, curve=(0.5, 0.8, 0.9, 0.95)))
>>> watch.keep_going(epoch=1, phase="train", accuracy=0.1)  # not a checkpoint
True
>>> watch.keep_going(epoch=2, phase="train", accuracy=0.70)  # 0.70 < 0.80 - 0.05
False
>>> watch.stopped_epoch, watch.lost_to
(2, 7)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search.errors import SpaceError
from search.records import Baseline

__all__ = ["DEFAULT_EARLY_STOPPING", "EarlyStopping", "Watch", "choose_baseline",
           "parse_early_stopping"]

_KEYS = ("enabled", "checkpoints", "margin")
MAX_MARGIN = 1.0


@dataclass(frozen=True)
class EarlyStopping:
    """``enabled``: on or off. ``checkpoints``: training epochs (1-based, at most the epoch count)
    after which a trial is compared with its neighbour; empty means every epoch from the first
    third of training on (see ``epochs_checked``). ``margin``: how far (in accuracy, 0..1) below
    the neighbour a trial may be before it is stopped."""

    enabled: bool = True
    checkpoints: tuple[int, ...] = ()
    margin: float = 0.02

    def epochs_checked(self, epochs: int) -> tuple[int, ...]:
        """The checkpoint epochs for a training budget of ``epochs`` (the last one excluded:
        stopping after it saves nothing)."""
        chosen = self.checkpoints or tuple(range(max(1, epochs // 3), epochs))
        return tuple(e for e in chosen if e < epochs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON; ``parse_early_stopping(rule.to_dict(), epochs=...) == rule``."""
        return {"enabled": self.enabled, "checkpoints": list(self.checkpoints),
                "margin": self.margin}


DEFAULT_EARLY_STOPPING = EarlyStopping()


def parse_early_stopping(data: Any, *, epochs: int, path: str = "early_stopping"
                         ) -> EarlyStopping:
    """Validate an ``early_stopping`` object (or a bool: on / off with the defaults) against a
    training budget of ``epochs``; SpaceError names the field and the allowed range."""
    if isinstance(data, bool):
        return EarlyStopping(enabled=data)
    if not isinstance(data, Mapping):
        raise SpaceError(path, f"got {data!r}; expected true, false or an object with "
                         f"{', '.join(_KEYS)}")
    for key in data:
        if key not in _KEYS:
            raise SpaceError(f"{path}.{key}", "unknown field", _KEYS)
    enabled = data.get("enabled", DEFAULT_EARLY_STOPPING.enabled)
    if not isinstance(enabled, bool):
        raise SpaceError(f"{path}.enabled", f"got {enabled!r}; must be true or false")
    margin = data.get("margin", DEFAULT_EARLY_STOPPING.margin)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not (
        0.0 <= margin <= MAX_MARGIN
    ):
        raise SpaceError(f"{path}.margin", f"got {margin!r}; must be a number in "
                         f"[0, {MAX_MARGIN:g}] (accuracy points below the neighbour)")
    checkpoints = data.get("checkpoints", [])
    if not isinstance(checkpoints, Sequence) or isinstance(checkpoints, str):
        raise SpaceError(f"{path}.checkpoints", f"got {checkpoints!r}; expected a list of "
                         f"epochs in [1, {epochs}]")
    for i, epoch in enumerate(checkpoints):
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= epochs:
            raise SpaceError(f"{path}.checkpoints[{i}]", f"got {epoch!r}; must be an epoch in "
                             f"[1, {epochs}] (the trial trains {epochs} epochs)")
    return EarlyStopping(enabled=enabled, checkpoints=tuple(sorted(set(checkpoints))),
                         margin=float(margin))


@dataclass(frozen=True)
class Finished:
    """What the neighbour choice needs of a finished, feasible, fully trained trial."""

    number: int
    accuracy: float
    params: int
    curve: tuple[float, ...]


def choose_baseline(finished: Sequence[Finished], *, min_params: int) -> Baseline | None:
    """The staircase neighbour of a trial that ends with at least ``min_params`` parameters:
    the most accurate finished trial with at most that many (ties: fewer parameters, then the
    earlier trial); None when there is none or it has no curve."""
    below = [f for f in finished if f.params <= min_params and f.curve]
    if not below:
        return None
    best = min(below, key=lambda f: (-f.accuracy, f.params, f.number))
    return Baseline(number=best.number, curve=best.curve)


class Watch:
    """The ``on_epoch`` side of the rule for one trial: records the curve, says when to stop."""

    def __init__(self, rule: EarlyStopping | None, baseline: Baseline | None) -> None:
        self.rule = rule if rule is not None and rule.enabled else None
        self.baseline = baseline
        self.curve: list[float] = []
        self.stopped_epoch: int | None = None
        self.stopped_accuracy: float | None = None
        self.lost_to: int | None = None

    def keep_going(self, *, epoch: int, phase: str, accuracy: float) -> bool:
        """Note one finished epoch; False when the trial should stop here."""
        if phase != "train":
            return True
        self.curve.append(accuracy)
        if self.rule is None or self.baseline is None:
            return True
        if epoch not in self.rule.epochs_checked(len(self.baseline.curve)):
            return True
        if epoch > len(self.baseline.curve):
            return True
        target = self.baseline.curve[epoch - 1]
        if accuracy < target - self.rule.margin:
            self.stopped_epoch = epoch
            self.stopped_accuracy = accuracy
            self.lost_to = self.baseline.number
            return False
        return True

    def reason(self) -> str | None:
        """Why the trial stopped early (None when it did not)."""
        if self.stopped_epoch is None or self.baseline is None or self.rule is None:
            return None
        target = self.baseline.curve[self.stopped_epoch - 1]
        return (f"stopped early at epoch {self.stopped_epoch}: validation accuracy "
                f"{self.stopped_accuracy:.4f} < {target:.4f} - {self.rule.margin:g} (trial "
                f"{self.lost_to}, which has no more parameters, at the same epoch)")
