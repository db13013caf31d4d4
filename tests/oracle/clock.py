"""The watermark, worked out for a whole file at once.

A streaming run over the same events, read in event-time order, moves its watermark to
``t - allowed_lateness`` at every event time ``t`` and, with ``--as-of``, finally to the
as-of time if that is later. Whatever it decides, it decides at the first of those
watermark steps at or after the decision time; that step is the record's ``detected_at``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Clock"]


@dataclass(frozen=True)
class Clock:
    """``watermark``: the final watermark (epoch seconds, UTC); ``steps``: every value it
    takes on the way there, sorted."""

    watermark: float
    steps: np.ndarray

    @classmethod
    def of(cls, times: np.ndarray, allowed_lateness: float, as_of: float | None) -> Clock:
        """The clock of events at ``times`` (epoch s UTC) with ``allowed_lateness`` (s).

        The watermark never moves back: an ``as_of`` before the last event time minus the
        lateness leaves it there, as in the streaming engine.
        """
        wm = float(times.max()) - allowed_lateness if len(times) else float("-inf")
        if as_of is not None and as_of > wm:
            wm = float(as_of)
        steps = np.unique(np.append(times - allowed_lateness, wm))
        return cls(wm, steps)

    def decided(self, at: np.ndarray) -> np.ndarray:
        """Which decision times (epoch s) the watermark has reached."""
        return np.asarray(at, dtype=np.float64) <= self.watermark

    def detected_at(self, at: np.ndarray) -> np.ndarray:
        """For decision times at or before the watermark: the first watermark step at or
        after each (epoch s UTC). Later times get the final watermark."""
        at = np.asarray(at, dtype=np.float64)
        i = np.searchsorted(self.steps, at, side="left")
        return self.steps[np.minimum(i, len(self.steps) - 1)]
