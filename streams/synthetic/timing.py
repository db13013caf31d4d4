"""Calendar helpers of the synthetic hospital. All times are integer epoch seconds, UTC;
the hospital keeps its working hours in UTC (a simplification, stated in the docs)."""

from __future__ import annotations

from itertools import accumulate
from random import Random

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "WEEK",
    "DailyCount",
    "HourProfile",
    "is_weekend",
    "office_time_between",
    "weekday",
]

MINUTE = 60
HOUR = 3600
DAY = 86400
WEEK = 7 * DAY


def weekday(t: int) -> int:
    """Day of the week of ``t`` (epoch s UTC), Monday = 0."""
    return (t // DAY + 3) % 7  # 1970-01-01 was a Thursday


def is_weekend(t: int) -> bool:
    """Whether ``t`` (epoch s UTC) falls on a Saturday or Sunday."""
    return weekday(t) >= 5


class HourProfile:
    """How activity spreads over the 24 hours of a day (relative weights per hour)."""

    def __init__(self, weights: list[float]) -> None:
        if len(weights) != 24:
            raise ValueError("an hour profile has 24 weights")
        self._hours = list(range(24))
        self._cum = list(accumulate(weights))

    def time_in(self, rng: Random, midnight: int) -> int:
        """A time on the day starting at ``midnight`` (epoch s UTC), drawn from the profile."""
        hour = rng.choices(self._hours, cum_weights=self._cum)[0]
        return midnight + hour * HOUR + rng.randrange(HOUR)


class DailyCount:
    """Turns an expected number of events a day into whole numbers, with a little
    day-to-day noise (about 5%) and the fractions carried over so that small rates
    still add up over a run."""

    def __init__(self, rng: Random) -> None:
        self._rng = rng
        self._carry: dict[str, float] = {}

    def draw(self, name: str, expected: float) -> int:
        """How many of ``name`` happen today when ``expected`` is the mean."""
        value = expected * (1.0 + 0.05 * self._rng.gauss(0.0, 1.0)) if expected >= 20 else expected
        value = max(0.0, value) + self._carry.get(name, 0.0)
        n = int(value)
        self._carry[name] = value - n
        return n


def office_time_between(rng: Random, lo: int, hi: int) -> int:
    """A time in ``[lo, hi]`` (epoch s UTC), during office hours (08:00-17:00) when the
    range allows it. Requires ``lo <= hi``."""
    first_day, last_day = lo // DAY, hi // DAY
    for _ in range(4):
        day = rng.randint(first_day, last_day)
        t = day * DAY + 8 * HOUR + rng.randrange(9 * HOUR)
        if lo <= t <= hi:
            return t
    return rng.randint(lo, hi)
