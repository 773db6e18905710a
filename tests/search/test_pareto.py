"""Pareto fronts and hypervolume against brute force and hand-worked cases."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search.errors import SearchError
from search.pareto import (
    FrontPoint,
    dominates,
    hypervolume,
    hypervolume_2d,
    hypervolume_3d,
    insert,
    non_dominated,
)

# Few distinct values, so ties and duplicates are common.
accuracies = st.sampled_from([0.0, 0.1, 0.5, 0.8, 0.9, 0.95, 1.0])
counts = st.sampled_from([1, 10, 100, 1000, 5000, 20000])


@st.composite
def point_sets(draw: st.DrawFn, *, macs: bool = False) -> list[FrontPoint]:
    n = draw(st.integers(min_value=0, max_value=12))
    return [
        FrontPoint(number=i, accuracy=draw(accuracies), params=draw(counts),
                   macs=draw(counts) if macs else None)
        for i in range(n)
    ]


def _brute_front(points: list[FrontPoint]) -> set[int]:
    def worse(a: FrontPoint, b: FrontPoint) -> bool:  # b dominates a
        ka, kb = a.costs(), b.costs()
        return all(y <= x for x, y in zip(ka, kb, strict=True)) and ka != kb

    return {p.number for p in points if not any(worse(p, q) for q in points)}


def _brute_volume(points: list[FrontPoint], reference: tuple[float, ...]) -> float:
    """Sum of the cells of the grid on every coordinate that some point dominates."""
    coords = [(p.accuracy, math.log10(p.params)) + ((math.log10(p.macs),) if p.macs else ())
              for p in points]
    ref = (reference[0], *(math.log10(r) for r in reference[1:]))
    axes = []
    for d in range(len(ref)):
        values = sorted({c[d] for c in coords} | {ref[d]})
        values = [v for v in values if (v >= ref[d] if d == 0 else v <= ref[d])]
        axes.append(list(itertools.pairwise(values)))
    total = 0.0
    for cell in itertools.product(*axes):
        # cell corner furthest from the reference: accuracy high end, costs low end
        covered = any(
            c[0] >= cell[0][1] and all(c[d] <= cell[d][0] for d in range(1, len(ref)))
            for c in coords
        )
        if covered:
            total += math.prod(hi - lo for lo, hi in cell)
    return total


@settings(max_examples=150, deadline=None)
@given(point_sets())
def test_non_dominated_and_incremental_insert_match_brute_force(points: list[FrontPoint]) -> None:
    expected = _brute_front(points)
    assert {p.number for p in non_dominated(points)} == expected
    front: tuple[FrontPoint, ...] = ()
    for point in points:
        update = insert(front, point)
        assert set(update.removed) <= set(front)
        assert update.added == (point in update.front)
        front = update.front
    assert {p.number for p in front} == expected


@settings(max_examples=150, deadline=None)
@given(point_sets())
def test_hypervolume_2d_matches_brute_force(points: list[FrontPoint]) -> None:
    reference = (0.0, 10_000.0)  # some points (20000 params) lie beyond it
    assert hypervolume_2d(points, reference) == pytest.approx(_brute_volume(points, reference))


@settings(max_examples=80, deadline=None)
@given(point_sets(macs=True))
def test_hypervolume_3d_matches_brute_force(points: list[FrontPoint]) -> None:
    reference = (0.0, 10_000.0, 10_000.0)
    assert hypervolume_3d(points, reference) == pytest.approx(_brute_volume(points, reference))
    assert hypervolume(points, reference) == hypervolume_3d(points, reference)


def test_hand_worked_front_and_hypervolume() -> None:
    a = FrontPoint(number=0, accuracy=0.9, params=1000)
    b = FrontPoint(number=1, accuracy=0.8, params=100)
    c = FrontPoint(number=2, accuracy=0.8, params=5000)  # dominated by a
    d = FrontPoint(number=3, accuracy=0.9, params=1000)  # ties a: both stay
    assert dominates(a, c) and not dominates(a, d) and not dominates(b, a)
    assert [p.number for p in non_dominated([a, b, c, d])] == [1, 0, 3]
    # reference 10^4: b covers log10 p in [2, 3) at 0.8, a covers [3, 4) at 0.9.
    assert hypervolume_2d([a, b, c], (0.0, 10_000)) == pytest.approx(0.8 * 1 + 0.9 * 1)
    assert hypervolume_2d([a, b], (0.5, 10_000)) == pytest.approx(0.3 + 0.4)
    assert hypervolume_2d([], (0.0, 10_000)) == 0.0
    # 3-D: one point at (0.5, 10 params, 100 macs) against (0, 1000, 1000): 0.5 * 2 * 1.
    p = FrontPoint(number=0, accuracy=0.5, params=10, macs=100)
    assert hypervolume_3d([p], (0.0, 1000, 1000)) == pytest.approx(1.0)


def test_insert_reports_what_left() -> None:
    front = (FrontPoint(number=0, accuracy=0.5, params=100),
             FrontPoint(number=1, accuracy=0.7, params=1000))
    update = insert(front, FrontPoint(number=2, accuracy=0.8, params=500))
    assert update.added and [p.number for p in update.removed] == [1]
    assert [p.number for p in update.front] == [0, 2]
    unchanged = insert(update.front, FrontPoint(number=3, accuracy=0.4, params=200))
    assert not unchanged.added and unchanged.front == update.front and unchanged.removed == ()


def test_errors_name_the_value() -> None:
    with pytest.raises(SearchError) as info:
        hypervolume_2d([FrontPoint(number=4, accuracy=0.5, params=0)], (0.0, 100))
    assert str(info.value) == (
        "params of trial 4: got 0; must be > 0 (hypervolume uses log10 of it)"
    )
    with pytest.raises(SearchError, match=r"^macs: point 0 has macs=None and point 1 has macs=5"):
        dominates(FrontPoint(number=0, accuracy=0.5, params=1),
                  FrontPoint(number=1, accuracy=0.5, params=1, macs=5))
    with pytest.raises(SearchError, match=r"^reference: got \[0.0\]"):
        hypervolume([], [0.0])
