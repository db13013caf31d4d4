"""Exact allocation of outcomes to opportunities.

With ``n`` opportunities and a rate ``r``, exactly ``round(r * n)`` of them get that
outcome (at least one when ``r > 0`` and ``n > 0``, so that a short run still shows every
kind of failure), in random positions.
"""

from __future__ import annotations

from random import Random

__all__ = ["allocate", "count_for"]


def count_for(rate: float, n: int) -> int:
    """How many of ``n`` opportunities get an outcome of rate ``rate``."""
    if rate <= 0 or n <= 0:
        return 0
    return min(n, max(1, round(rate * n)))


def allocate(rng: Random, n: int, rates: dict[str, float], rest: str) -> list[str]:
    """Outcomes for ``n`` opportunities: ``count_for(rate, n)`` of each named outcome, the
    remainder ``rest``, shuffled with ``rng``."""
    outcomes: list[str] = []
    for name, rate in rates.items():
        outcomes.extend([name] * count_for(rate, n))
    del outcomes[n:]
    outcomes.extend([rest] * (n - len(outcomes)))
    rng.shuffle(outcomes)
    return outcomes
