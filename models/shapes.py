"""Factorising sizes into grids: the d1 x d2 a bilinear projection reshapes a flat vector into.

No torch here: plan.py and costs.py use it.

>>> square_factors(784, field="layers[0]")
(28, 28)
>>> square_factors(1000, field="layers[0]")
(25, 40)
>>> most_square_factors(10)
(2, 5)
"""

from __future__ import annotations

import math

from models.errors import SpecError

__all__ = ["most_square_factors", "square_factors"]


def most_square_factors(n: int) -> tuple[int, int]:
    """The factor pair d1 <= d2, d1 * d2 = n, with d1 as large as possible (d1 may be 1)."""
    if n < 1:
        raise SpecError("n", f"got {n!r}; must be a positive integer")
    for d1 in range(math.isqrt(n), 0, -1):
        if n % d1 == 0:
            return d1, n // d1
    raise AssertionError("unreachable: 1 divides every n")  # pragma: no cover


def _next_composite(n: int) -> int:
    m = n + 1
    while most_square_factors(m)[0] < 2:
        m += 1
    return m


def square_factors(n: int, *, field: str) -> tuple[int, int]:
    """Most square d1 <= d2 with d1 * d2 = n and d1 >= 2 (a useful bilinear input grid).

    Raises SpecError naming ``field`` when n has no factorisation with both sides >= 2
    (n < 4 or n prime): a 1 x n grid turns the bilinear projection into a dense layer in disguise.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SpecError(field, f"size {n!r} must be a positive integer")
    d1, d2 = most_square_factors(n)
    if d1 < 2:
        reason = "is prime" if n > 3 else "is below 4"
        suggestion = _next_composite(max(n, 3))
        s1, s2 = most_square_factors(suggestion)
        raise SpecError(
            field,
            f"a bilinear projection reshapes {n} features into a d1 x d2 grid with d1, d2 >= 2, "
            f"but {n} {reason}; pad the input to a composite size "
            f"(e.g. {suggestion} = {s1} x {s2}) or use kind 'full'",
        )
    return d1, d2
