"""Pareto fronts of accuracy (maximise) against parameters (minimise), optionally MACs (minimise).

Pure Python, no Optuna. A point dominates another when it is no worse in every objective and
better in at least one; points with equal objectives do not dominate each other, so both stay.

Hypervolume is measured in (accuracy, log10 params[, log10 macs]) against an explicit reference
point ``(accuracy, params[, macs])``, usually ``(0, the largest architecture's params)``: the area
(volume) of the region each front point dominates, bounded by the reference; points beyond the
reference contribute nothing.

>>> a = FrontPoint(number=0, accuracy=0.9, params=1000)
>>> b = FrontPoint(number=1, accuracy=0.8, params=100)
>>> c = FrontPoint(number=2, accuracy=0.8, params=5000)
>>> [p.number for p in non_dominated([a, b, c])]
[1, 0]
>>> round(hypervolume_2d([a, b], (0.0, 10_000)), 6)  # 0.9 * (4 - 3) + 0.8 * (3 - 2)
1.7
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from search.errors import SearchError

__all__ = [
    "FrontPoint",
    "FrontUpdate",
    "dominates",
    "hypervolume",
    "hypervolume_2d",
    "hypervolume_3d",
    "insert",
    "non_dominated",
]


@dataclass(frozen=True)
class FrontPoint:
    """One feasible, complete trial as the front sees it. ``macs`` is the third objective when set
    (then every point of a front must have it)."""

    number: int
    accuracy: float
    params: int
    macs: int | None = None

    def costs(self) -> tuple[float, ...]:
        """Objectives as costs to minimise: (-accuracy, params[, macs])."""
        if self.macs is None:
            return (-self.accuracy, float(self.params))
        return (-self.accuracy, float(self.params), float(self.macs))


@dataclass(frozen=True)
class FrontUpdate:
    """What ``insert`` did: the new front, whether the point joined it, who left it."""

    front: tuple[FrontPoint, ...]
    added: bool
    removed: tuple[FrontPoint, ...]


def dominates(a: FrontPoint, b: FrontPoint) -> bool:
    """True when ``a`` is no worse than ``b`` in every objective and better in one."""
    ca, cb = a.costs(), b.costs()
    if len(ca) != len(cb):
        raise SearchError(
            f"macs: point {a.number} has macs={a.macs!r} and point {b.number} has macs={b.macs!r}; "
            "a front compares points with the same objectives (set macs on all or none)"
        )
    return all(x <= y for x, y in zip(ca, cb, strict=True)) and ca != cb


def insert(front: Iterable[FrontPoint], point: FrontPoint) -> FrontUpdate:
    """Add ``point`` to the non-dominated ``front`` in one pass (O(len(front))).

    If a member dominates the point, the front is unchanged; otherwise the point joins and every
    member it dominates leaves. The order of the remaining members is kept, the point goes last.
    """
    members = tuple(front)
    if any(dominates(member, point) for member in members):
        return FrontUpdate(front=members, added=False, removed=())
    removed = tuple(m for m in members if dominates(point, m))
    kept = tuple(m for m in members if not dominates(point, m))
    return FrontUpdate(front=(*kept, point), added=True, removed=removed)


def non_dominated(points: Iterable[FrontPoint]) -> list[FrontPoint]:
    """The non-dominated subset of ``points``, ordered by parameters then accuracy (best first)."""
    front: tuple[FrontPoint, ...] = ()
    for point in points:
        front = insert(front, point).front
    return sorted(front, key=lambda p: (p.params, -p.accuracy, p.macs or 0, p.number))


def _log10(value: float, *, name: str) -> float:
    if value <= 0:
        raise SearchError(f"{name}: got {value!r}; must be > 0 (hypervolume uses log10 of it)")
    return math.log10(value)


def _area(points: Iterable[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Exact area dominated by 2-D points (a maximised, b minimised) within the reference box
    (a >= ref_a, b <= ref_b)."""
    ref_a, ref_b = reference
    inside = sorted((b, a) for a, b in points if a > ref_a and b < ref_b)
    area, best_a = 0.0, ref_a
    for i, (b, a) in enumerate(inside):
        best_a = max(best_a, a)
        next_b = inside[i + 1][0] if i + 1 < len(inside) else ref_b
        area += (best_a - ref_a) * (next_b - b)
    return area


def hypervolume_2d(points: Iterable[FrontPoint], reference: Sequence[float]) -> float:
    """Hypervolume in (accuracy, log10 params) against ``reference = (accuracy, params)``."""
    ref_acc, ref_params = float(reference[0]), float(reference[1])
    ref = (ref_acc, _log10(ref_params, name="reference params"))
    return _area(((p.accuracy, _log10(p.params, name=f"params of trial {p.number}"))
                  for p in points), ref)


def hypervolume_3d(points: Iterable[FrontPoint], reference: Sequence[float]) -> float:
    """Hypervolume in (accuracy, log10 params, log10 macs) against ``(accuracy, params, macs)``.

    Exact, by slicing along log10 macs: between consecutive macs values the section is the 2-D
    area of the points with no more macs. O(n^2 log n), fine for fronts of hundreds.
    """
    ref_acc, ref_params, ref_macs = (float(reference[0]), float(reference[1]),
                                     float(reference[2]))
    ref_c = _log10(ref_macs, name="reference macs")
    ref_2d = (ref_acc, _log10(ref_params, name="reference params"))
    triples = []
    for p in points:
        if p.macs is None:
            raise SearchError(f"macs: trial {p.number} has none; a 3-objective hypervolume "
                              "needs macs on every point")
        triples.append((_log10(p.macs, name=f"macs of trial {p.number}"), p.accuracy,
                        _log10(p.params, name=f"params of trial {p.number}")))
    levels = sorted({c for c, _, _ in triples if c < ref_c})
    volume = 0.0
    for i, level in enumerate(levels):
        upper = levels[i + 1] if i + 1 < len(levels) else ref_c
        section = _area(((a, b) for c, a, b in triples if c <= level), ref_2d)
        volume += section * (upper - level)
    return volume


def hypervolume(points: Sequence[FrontPoint], reference: Sequence[float]) -> float:
    """2-D or 3-D hypervolume by the length of ``reference`` (2: accuracy, params; 3: + macs)."""
    if len(reference) == 2:
        return hypervolume_2d(points, reference)
    if len(reference) == 3:
        return hypervolume_3d(points, reference)
    raise SearchError(f"reference: got {list(reference)!r}; expected (accuracy, params) or "
                      "(accuracy, params, macs)")
