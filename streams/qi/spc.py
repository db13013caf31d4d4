"""Statistical process control: the XmR chart of "Making Data Count", and Laney's p′ chart.

Pure functions of a series: values (and, for p′, numerators and denominators) in date
order in, one row per point out, with the limits, the special-cause rule that names the
point and whether it is an improvement or a concern. No I/O, no clock.

The method is NHS England's Making Data Count, as the R package NHSRplotthedots
implements it:

- per *segment* (the points between two rebase dates) the centre line is the mean, the
  moving ranges are ``|y[i] - y[i-1]|`` within the segment, AMR their mean; with outlier
  screening (the default) moving ranges ``>= 3.267 x AMR`` are dropped and AMR is
  recomputed once; process limits are ``mean +- 2.66 x AMR`` and the near-limit band
  ``mean +- (2/3 x 2.66) x AMR``;
- ``baseline=N`` fixes each segment's limits on its first N points (N >= 12); a segment
  of fewer than 13 points carries the "trial limits" warning;
- four special-cause rules, none crossing a segment boundary: outside the limits; a shift
  (7 or more points on one side of the centre; a point on the centre breaks it); a trend
  (7 or more points each strictly above, or below, the one before; a tie breaks it); two
  of three (a point near a limit in a window of 3 consecutive points, 2 or more of them
  near a limit, all 3 on the same side of the centre). When several apply to a point the
  first of outside limits, trend, two of three, shift names it, and gives its direction.

The p′ chart standardises each proportion by its own binomial sigma and widens the limits
by the spread of the standardised values (sigma_z), so limits vary with each point's
denominator: see ``laney_p_prime``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from detectors.errors import ConfigError

__all__ = [
    "CHART_COLUMNS",
    "IMPROVEMENT_DIRECTIONS",
    "MIN_BASELINE",
    "TRIAL_LIMIT_POINTS",
    "Improvement",
    "SeriesSummary",
    "assurance",
    "laney_p_prime",
    "segments_from_changes",
    "special_causes",
    "summarise",
    "xmr",
]

Improvement = Literal["decrease", "increase", "neutral"]
IMPROVEMENT_DIRECTIONS: tuple[str, ...] = ("decrease", "increase", "neutral")

#: Limits fixed on fewer points than this are refused (Making Data Count's minimum).
MIN_BASELINE = 12
#: A segment with fewer points than this carries the "trial limits" warning.
TRIAL_LIMIT_POINTS = 13

_LIMIT_FACTOR = 2.66  # 3 / d2, d2 = 1.128 for moving ranges of two
_SCREEN_FACTOR = 3.267  # D4 for moving ranges of two: upper limit of the moving range
_NEAR_FACTOR = 2 / 3 * _LIMIT_FACTOR
_D2 = 1.128
_RUN = 7  # points in a shift or trend

#: Rule names in precedence order (the first that applies names the point).
RULES: tuple[str, ...] = ("outside limits", "trend", "two of three", "shift")

#: Columns of a computed chart, in order: the value ``y``, then ``CHART_COLUMNS``.
CHART_COLUMNS = (
    "segment",
    "centre",
    "lower",
    "upper",
    "near_lower",
    "near_upper",
    "trial",
    "rule",
    "direction",
    "variation",
)


def segments_from_changes(
    dates: Sequence[pd.Timestamp], changes: Sequence[pd.Timestamp]
) -> np.ndarray:
    """Segment number of each point: a change starts a new segment at the first point
    dated on or after it. ``dates`` are the points' period starts in order; both are
    timezone-aware timestamps (or both naive). Changes before the first point or after the
    last, and several changes before the same point, start no empty segments."""
    seg = np.zeros(len(dates), dtype=np.int64)
    if not len(dates):
        return seg
    d = pd.DatetimeIndex(dates)
    starts: set[int] = set()
    for change in changes:
        pos = int(d.searchsorted(pd.Timestamp(change), side="left"))
        if 0 < pos < len(d):
            starts.add(pos)
    for pos in sorted(starts):
        seg[pos:] += 1
    return seg


def _check_baseline(baseline: int | None) -> None:
    if baseline is not None and baseline < MIN_BASELINE:
        raise ConfigError(
            f"--baseline {baseline}: limits need at least {MIN_BASELINE} points; "
            f"give {MIN_BASELINE} or more, or leave it out"
        )


def _segment_bounds(segment: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal segment numbers."""
    if not len(segment):
        return []
    cuts = np.flatnonzero(np.diff(segment)) + 1
    edges = [0, *cuts.tolist(), len(segment)]
    return list(itertools.pairwise(edges))


def _amr(y: np.ndarray, screen_outliers: bool) -> float:
    """Average moving range of ``y`` (one segment's baseline), screened once if asked."""
    if len(y) < 2:
        return float("nan")
    mr = np.abs(np.diff(y))
    amr = float(mr.mean())
    # With AMR 0 every range would be "an outlier" and none would be left: nothing to screen.
    if screen_outliers and amr > 0:
        kept = mr[mr < _SCREEN_FACTOR * amr]
        amr = float(kept.mean())
    return amr


def xmr(
    values: Sequence[float] | np.ndarray | pd.Series,
    *,
    segment: Sequence[int] | np.ndarray | None = None,
    improvement: Improvement = "decrease",
    screen_outliers: bool = True,
    baseline: int | None = None,
) -> pd.DataFrame:
    """The XmR (individuals) chart of ``values`` in date order.

    ``segment`` numbers the rebase segments (non-decreasing; ``segments_from_changes``);
    by default the whole series is one. Returns one row per point (same index as a
    Series given) with ``y``, ``segment``, ``centre``, ``lower``/``upper`` (process
    limits), ``near_lower``/``near_upper`` (the 2-sigma band), ``trial`` (segment of fewer
    than 13 points), ``rule`` (the special cause naming the point, "" for none),
    ``direction`` (+1 high or rising, -1 low or falling, 0 none) and ``variation``
    ("common cause", "improvement", "concern" or "neutral"). A segment of one point has
    no limits (NaN) and no special causes.
    """
    _check_baseline(baseline)
    y = np.asarray(values, dtype=float)
    seg = _segments(segment, len(y))
    centre = np.full(len(y), np.nan)
    amr = np.full(len(y), np.nan)
    for start, stop in _segment_bounds(seg):
        base = y[start:stop][: baseline or None]
        centre[start:stop] = base.mean()
        amr[start:stop] = _amr(base, screen_outliers)
    frame = pd.DataFrame(
        {
            "y": y,
            "segment": seg,
            "centre": centre,
            "lower": centre - _LIMIT_FACTOR * amr,
            "upper": centre + _LIMIT_FACTOR * amr,
            "near_lower": centre - _NEAR_FACTOR * amr,
            "near_upper": centre + _NEAR_FACTOR * amr,
        },
        index=values.index if isinstance(values, pd.Series) else None,
    )
    return _finish(frame, improvement)


def laney_p_prime(
    failures: Sequence[float] | np.ndarray | pd.Series,
    opportunities: Sequence[float] | np.ndarray | pd.Series,
    *,
    segment: Sequence[int] | np.ndarray | None = None,
    improvement: Improvement = "decrease",
    baseline: int | None = None,
) -> pd.DataFrame:
    """Laney's p′ chart of the proportions ``failures / opportunities`` in date order.

    Per segment: centre p̄ = Σx / Σn (over the baseline points), sigma_i = √(p̄(1-p̄)/n_i),
    z_i = (p_i - p̄) / sigma_i, sigma_z = mean |z_i - z_(i-1)| / 1.128; limits
    p̄ ± 3 sigma_i sigma_z and the near band p̄ ± 2 sigma_i sigma_z, clamped to [0, 1].
    Every point needs opportunities > 0 (leave empty periods out first). A segment whose
    p̄ is 0 or 1 has no spread: its limits are p̄ itself. Same columns as ``xmr``.
    """
    _check_baseline(baseline)
    x = np.asarray(failures, dtype=float)
    n = np.asarray(opportunities, dtype=float)
    if len(x) != len(n):
        raise ValueError("failures and opportunities differ in length")
    if (n <= 0).any():
        raise ValueError("every point of a p′ chart needs opportunities > 0")
    seg = _segments(segment, len(x))
    p = x / n if len(n) else np.zeros(0)
    centre = np.full(len(p), np.nan)
    spread = np.full(len(p), np.nan)  # sigma_i * sigma_z
    for start, stop in _segment_bounds(seg):
        bx, bn = x[start:stop][: baseline or None], n[start:stop][: baseline or None]
        pbar = float(bx.sum() / bn.sum())
        centre[start:stop] = pbar
        if pbar in (0.0, 1.0):
            spread[start:stop] = 0.0
            continue
        sigma = np.sqrt(pbar * (1 - pbar) / n[start:stop])
        z = (p[start:stop][: len(bn)] - pbar) / sigma[: len(bn)]
        sigma_z = float(np.abs(np.diff(z)).mean() / _D2) if len(z) >= 2 else float("nan")
        spread[start:stop] = sigma * sigma_z
    frame = pd.DataFrame(
        {
            "y": p,
            "segment": seg,
            "centre": centre,
            "lower": np.clip(centre - 3 * spread, 0, 1),
            "upper": np.clip(centre + 3 * spread, 0, 1),
            "near_lower": np.clip(centre - 2 * spread, 0, 1),
            "near_upper": np.clip(centre + 2 * spread, 0, 1),
        },
        index=failures.index if isinstance(failures, pd.Series) else None,
    )
    return _finish(frame, improvement)


def _segments(segment: Sequence[int] | np.ndarray | None, length: int) -> np.ndarray:
    if segment is None:
        return np.zeros(length, dtype=np.int64)
    seg = np.asarray(segment, dtype=np.int64)
    if len(seg) != length:
        raise ValueError("segment numbers differ in length from the values")
    if len(seg) and (np.diff(seg) < 0).any():
        raise ValueError("segment numbers must not decrease (points in date order)")
    return seg


def _finish(frame: pd.DataFrame, improvement: Improvement) -> pd.DataFrame:
    seg = frame["segment"].to_numpy()
    sizes = pd.Series(seg).map(pd.Series(seg).value_counts()).to_numpy()
    frame["trial"] = sizes < TRIAL_LIMIT_POINTS
    rule, direction = special_causes(
        frame["y"].to_numpy(),
        frame["centre"].to_numpy(),
        frame["lower"].to_numpy(),
        frame["upper"].to_numpy(),
        frame["near_lower"].to_numpy(),
        frame["near_upper"].to_numpy(),
        seg,
    )
    frame["rule"] = rule
    frame["direction"] = direction
    frame["variation"] = _variation(rule, direction, improvement)
    return frame[["y", *CHART_COLUMNS]]


def _variation(rule: np.ndarray, direction: np.ndarray, improvement: Improvement) -> np.ndarray:
    out = np.full(len(rule), "common cause", dtype=object)
    special = rule != ""
    if improvement == "neutral":
        out[special] = "neutral"
        return out
    good = -1 if improvement == "decrease" else 1
    out[special & (direction == good)] = "improvement"
    out[special & (direction == -good)] = "concern"
    return out


def special_causes(
    y: np.ndarray,
    centre: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    near_lower: np.ndarray,
    near_upper: np.ndarray,
    segment: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The special-cause rule naming each point ("" for none) and its direction (+1/-1/0).

    All arrays are per point; limits may vary per point (p′) and may be NaN (no limits:
    those rules do not fire). Rules never cross a change of ``segment``.
    """
    rule = np.full(len(y), "", dtype=object)
    direction = np.zeros(len(y), dtype=np.int64)
    for start, stop in _segment_bounds(segment):
        sl = slice(start, stop)
        found = _segment_rules(
            y[sl], centre[sl], lower[sl], upper[sl], near_lower[sl], near_upper[sl]
        )
        # lowest precedence first, so each higher rule overwrites what it also flags
        for name in reversed(RULES):
            flags, signs = found[name]
            rule[sl][flags] = name
            direction[sl][flags] = signs[flags]
    return rule, direction


def _segment_rules(
    y: np.ndarray,
    centre: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    near_lower: np.ndarray,
    near_upper: np.ndarray,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    n = len(y)
    with np.errstate(invalid="ignore"):
        # a point within rounding error of a line is on it (the mean of 20 x 0.05 is not
        # exactly 0.05 in floating point, and that point is not "above" it)
        on_centre = _close(y, centre)
        side = np.where(on_centre | np.isnan(centre), 0, np.sign(y - centre)).astype(np.int64)
        outside = ((y > upper) & ~_close(y, upper)) | ((y < lower) & ~_close(y, lower))
        near = ~outside & (
            ((y > near_upper) & ~_close(y, near_upper))
            | ((y < near_lower) & ~_close(y, near_lower))
        )

    two = np.zeros(n, dtype=bool)
    for i in range(n - 2):
        s = side[i : i + 3]
        if s[0] != 0 and (s == s[0]).all() and near[i : i + 3].sum() >= 2:
            two[i : i + 3] |= near[i : i + 3]

    shift = np.zeros(n, dtype=bool)
    for start, stop, _value in _runs(side):
        if _value != 0 and stop - start >= _RUN:
            shift[start:stop] = True

    trend = np.zeros(n, dtype=bool)
    trend_sign = np.zeros(n, dtype=np.int64)
    steps = np.sign(np.diff(y)).astype(np.int64) if n > 1 else np.zeros(0, dtype=np.int64)
    for start, stop, value in _runs(steps):
        if value != 0 and stop - start >= _RUN - 1:
            # steps start..stop-1 join points start..stop
            trend[start : stop + 1] = True
            trend_sign[start : stop + 1] = value

    return {
        "outside limits": (outside, side),
        "trend": (trend, trend_sign),
        "two of three": (two, side),
        "shift": (shift, side),
    }


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.isclose(a, b, rtol=1e-9, atol=1e-12)


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, value) of each run of equal values."""
    if not len(values):
        return []
    cuts = np.flatnonzero(np.diff(values)) + 1
    edges = [0, *cuts.tolist(), len(values)]
    return [(a, b, int(values[a])) for a, b in itertools.pairwise(edges)]


def assurance(target: float | None, lower: float, upper: float, improvement: Improvement) -> str:
    """Whether the process, as its last limits describe it, meets ``target``.

    "consistently passes" when the whole band between the limits is on the good side of
    the target, "consistently fails" when it is on the bad side, "hit and miss" when the
    target lies between the limits; "" with no target, no limits, or no direction.
    """
    if target is None or improvement == "neutral" or np.isnan(lower) or np.isnan(upper):
        return ""
    if improvement == "decrease":
        if target > upper:
            return "consistently passes"
        if target < lower:
            return "consistently fails"
    else:
        if target < lower:
            return "consistently passes"
        if target > upper:
            return "consistently fails"
    return "hit and miss"


@dataclass(frozen=True)
class SeriesSummary:
    """One measure's chart in a line: its last point's state (the variation icon),
    its last segment's centre and limits, and the assurance against a target.
    ``points`` counts the chart's points, ``segment_points`` those of its last segment."""

    latest: float
    centre: float
    lower: float
    upper: float
    variation: str
    assurance: str
    trial: bool
    points: int
    segment_points: int

    @property
    def icon(self) -> str:
        """The variation icon's words, e.g. "special cause concern (high)"."""
        return variation_icon(self.variation, self.direction_word)

    direction_word: str = ""


def variation_icon(variation: str, direction_word: str) -> str:
    """Text of a variation icon: "common cause" or "special cause <kind> (<high|low>)"."""
    if variation == "common cause":
        return "common cause"
    return f"special cause {variation} ({direction_word})" if direction_word else variation


def summarise(
    chart: pd.DataFrame, target: float | None, improvement: Improvement
) -> SeriesSummary | None:
    """The summary of a chart from ``xmr`` or ``laney_p_prime``; ``None`` for no points."""
    if chart.empty:
        return None
    last = chart.iloc[-1]
    side = int(last["direction"])
    if last["rule"] and side == 0:
        side = int(np.sign(last["y"] - last["centre"]))
    word = {1: "high", -1: "low"}.get(side, "") if last["rule"] else ""
    return SeriesSummary(
        latest=float(last["y"]),
        centre=float(last["centre"]),
        lower=float(last["lower"]),
        upper=float(last["upper"]),
        variation=str(last["variation"]),
        assurance=assurance(target, float(last["lower"]), float(last["upper"]), improvement),
        trial=bool(last["trial"]),
        points=len(chart),
        segment_points=int((chart["segment"] == last["segment"]).sum()),
        direction_word=word,
    )
