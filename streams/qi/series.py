"""From the measures table to one SPC chart per measure series, with changes and targets.

A *series* is one detector's measure (for one value of each ``--by`` field) over the
periods. Periods still provisional (not complete at the ledger's horizon, or with
opportunities still open) are kept for the chart but left out of the limits and rules:
their value can still move. A proportion series has a point for each period with
opportunities; a count series (violations only) has one for every period.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from detectors.config_reader import read_file, read_yaml
from detectors.errors import ConfigError
from streams.qi.ledger import BY_FIELDS
from streams.qi.measures import zone
from streams.qi.spc import (
    CHART_COLUMNS,
    Improvement,
    SeriesSummary,
    laney_p_prime,
    segments_from_changes,
    summarise,
    xmr,
)

__all__ = [
    "POINT_COLUMNS",
    "RARE_EVENTS_WARNING",
    "SUMMARY_COLUMNS",
    "Change",
    "Chart",
    "SeriesChart",
    "Target",
    "build_charts",
    "load_changes",
    "parse_change",
    "parse_target",
    "summary_table",
]

Chart = Literal["xmr", "pprime"]
_SCOPE_FIELDS = ("detector", *BY_FIELDS)

#: Columns of a chart's points, in order (``SeriesChart.points``).
POINT_COLUMNS = (
    "period_start",
    "period_end",
    "value",
    "opportunities",
    "failures",
    "provisional",
    "small",
    *CHART_COLUMNS,
)
#: Columns of the Making-Data-Count summary (``summary_table``), the ``by`` fields after
#: ``detector``.
SUMMARY_COLUMNS = (
    "detector",
    "measure",
    "chart",
    "points",
    "latest_period",
    "latest",
    "mean",
    "lower",
    "upper",
    "variation",
    "assurance",
    "target",
    "trial_limits",
    "limit_points",
    "rare_events",
    "provisional_periods",
    "last_shown_provisional",
)
#: What a chart of rare events (``SeriesChart.rare_events``) carries, in every output.
RARE_EVENTS_WARNING = (
    "Rare events (under one a period on average): an XmR chart of rare events flags "
    "ordinary zeros and ones as special causes. Read the counts, and look into each "
    "violation itself."
)


@dataclass(frozen=True)
class Change:
    """A dated change to the service (a PDSA cycle): limits are recomputed from the first
    period starting on or after ``day`` (local midnight). ``scope`` limits it to series
    with these values (``detector``, ``site``, ``specialty``, ``clinic``); empty: all."""

    day: date
    label: str
    scope: tuple[tuple[str, str], ...] = ()

    def applies_to(self, values: Mapping[str, str]) -> bool:
        """True when every scoped field of the change has the series' value."""
        return all(values.get(k) == v for k, v in self.scope)


def parse_change(text: str) -> Change:
    """``--change 2026-03-01:"SMS reminders"`` (the label is optional)."""
    day_text, _, label = text.partition(":")
    try:
        day = date.fromisoformat(day_text.strip())
    except ValueError:
        raise ConfigError(
            f'--change {text!r}: start with the date, e.g. 2026-03-01:"SMS reminders"'
        ) from None
    return Change(day, label.strip() or f"change {day.isoformat()}")


def load_changes(path: str | Path) -> list[Change]:
    """A YAML file of dated changes::

    changes:
      - date: 2026-03-01
        label: SMS reminders
        detector: reschedule-notice   # optional, as are site, specialty, clinic
    """
    # the one configuration reader: values as written, hostile files refused
    data = read_yaml(read_file(path, "changes file"), str(path)).plain()
    items = data.get("changes") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"changes file {path}: expected `changes:` with a list of changes")
    out = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict) or "date" not in item:
            raise ConfigError(f"changes file {path}: change {i} needs a `date:`")
        unknown = set(item) - {"date", "label", *_SCOPE_FIELDS}
        if unknown:
            raise ConfigError(
                f"changes file {path}: change {i}: unknown setting {sorted(unknown)[0]!r}; "
                f"use date, label, {', '.join(_SCOPE_FIELDS)}"
            )
        raw = item["date"]
        try:
            day = raw if isinstance(raw, date) else date.fromisoformat(str(raw))
        except ValueError:
            raise ConfigError(
                f"changes file {path}: change {i}: date {raw!r} is not YYYY-MM-DD"
            ) from None
        scope = tuple((k, str(item[k])) for k in _SCOPE_FIELDS if k in item)
        out.append(Change(day, str(item.get("label") or f"change {day}"), scope))
    return out


_TARGET = re.compile(r"^([^=]+)=\s*([0-9.]+)\s*(%?)$")


class Target(NamedTuple):
    """A target as written: ``value`` (a proportion for a percentage, 5% -> 0.05) and
    whether it was written as a percentage."""

    value: float
    percent: bool


def parse_target(text: str) -> tuple[str, Target]:
    """``--target result-overdue=5%`` (or ``=0.05``; a count measure's target is a count,
    e.g. ``contact-after-death=0``). A percentage over 100% is refused here; whether the
    value suits the detector's measure is checked by ``build_charts``."""
    m = _TARGET.match(text.strip())
    if not m:
        raise ConfigError(f"--target {text!r}: write DETECTOR=VALUE, e.g. result-overdue=5%")
    try:
        value = float(m.group(2))
    except ValueError:
        raise ConfigError(f"--target {text!r}: {m.group(2)!r} is not a number") from None
    if m.group(3) and value > 100:
        raise ConfigError(f"--target {text!r}: a percentage goes from 0% to 100%")
    return m.group(1).strip(), Target(value / 100 if m.group(3) else value, bool(m.group(3)))


def _check_target(detector: str, target: float | Target, measure: str) -> float:
    """The target's value, once it is known to suit the detector's ``measure``."""
    value, percent = (
        (target.value, target.percent) if isinstance(target, Target) else (target, False)
    )
    if measure == "count" and percent:
        raise ConfigError(
            f"--target {detector}={value * 100:g}%: {detector} is a count of violations "
            f"(no denominator, so no percentage); give a count, e.g. {detector}=0"
        )
    if measure == "proportion" and value > 1:
        raise ConfigError(
            f"--target {detector}={value:g}: {detector} is a failure proportion; "
            f"write a percentage (e.g. {detector}=5%) or a fraction up to 1 (0.05)"
        )
    return float(value)


@dataclass
class SeriesChart:
    """One measure series with its SPC chart.

    ``points`` has one row per period shown: ``period_start``/``period_end`` (aware,
    local), ``value``, ``opportunities``, ``failures``, ``provisional`` (not used for the
    limits), ``small``, and the chart columns of ``streams.qi.spc`` (NaN or "" on
    provisional points). ``changes`` are those that started a new segment.
    """

    detector: str
    group: dict[str, str]
    measure: str
    chart: Chart
    points: pd.DataFrame
    summary: SeriesSummary | None
    target: float | None
    changes: list[tuple[pd.Timestamp, Change]] = field(default_factory=list)
    period_word: str = "week"
    #: points the last segment's limits rest on (fewer than ``--baseline`` when the
    #: segment is shorter than it); 0 without limits
    limit_points: int = 0
    #: the ``--baseline`` asked for (None: limits from every point of each segment)
    baseline: int | None = None

    @property
    def rare_events(self) -> bool:
        """A count of rare events: under one violation a period on average, or limits
        that collapse onto the mean (outlier screening drops every moving range of a
        series of zeros and the odd one). Its XmR flags ordinary zeros and ones as
        special causes: every output says so (``RARE_EVENTS_WARNING``)."""
        s = self.summary
        if self.measure != "count" or s is None:
            return False
        collapsed = not np.isnan(s.upper) and np.isclose(s.upper, s.lower)
        return bool(s.centre < 1 or collapsed)

    @property
    def title(self) -> str:
        """``detector`` or ``detector · site north · ...``."""
        parts = [self.detector, *(f"{k} {v}" for k, v in self.group.items())]
        return " · ".join(parts)

    @property
    def slug(self) -> str:
        """A file-name-safe name of the series."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join([self.detector, *self.group.values()]))


def build_charts(
    measures: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    chart: Chart = "xmr",
    changes: Sequence[Change] = (),
    targets: Mapping[str, float | Target] | None = None,
    baseline: int | None = None,
    screen_outliers: bool = True,
    improvement: Improvement = "decrease",
    tz: str = "Europe/London",
    period: str = "week",
) -> list[SeriesChart]:
    """One ``SeriesChart`` per detector and ``by`` group of the measures table.

    ``chart="pprime"`` draws Laney's p′ for proportion measures (count measures stay
    XmR). A target for an unknown detector is refused, as is a percentage target of a
    count measure and a proportion target over 1.
    """
    targets = dict(targets or {})
    known = set(measures["detector"].unique()) if len(measures) else set()
    for det in targets:
        if det not in known:
            raise ConfigError(
                f"--target {det}: no such detector in the ledger; "
                f"choose from {', '.join(sorted(known)) or '(none)'}"
            )
    out: list[SeriesChart] = []
    keys = ["detector", *by]
    for key, rows in measures.groupby(keys, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        values = dict(zip(keys, (str(k) for k in key), strict=True))
        det = values.pop("detector")
        target = targets.get(det)
        out.append(
            _series(
                det,
                values,
                rows,
                chart=chart,
                changes=[c for c in changes if c.applies_to({"detector": det, **values})],
                target=None
                if target is None
                else _check_target(det, target, str(rows["measure"].iloc[0])),
                baseline=baseline,
                screen_outliers=screen_outliers,
                improvement=improvement,
                tz=tz,
            )
        )
        out[-1].period_word = period
    return out


def _series(
    detector: str,
    group: dict[str, str],
    rows: pd.DataFrame,
    *,
    chart: Chart,
    changes: Sequence[Change],
    target: float | None,
    baseline: int | None,
    screen_outliers: bool,
    improvement: Improvement,
    tz: str,
) -> SeriesChart:
    measure = str(rows["measure"].iloc[0])
    if measure == "proportion":
        rows = rows[rows["opportunities"].fillna(0) > 0]
        value = rows["failure_proportion"].astype(float)
    else:
        value = rows["violations"].astype(float)
    points = pd.DataFrame(
        {
            "period_start": rows["period_start"].to_numpy(),
            "period_end": rows["period_end"].to_numpy(),
            "value": value.to_numpy(),
            "opportunities": rows["opportunities"].astype("Int64").array,
            "failures": rows["failures"].to_numpy(),
            "provisional": (~rows["complete"].astype(bool) | (rows["open"] > 0)).to_numpy(),
            "small": rows["small"].astype(bool).to_numpy(),
        }
    )
    used = points[~points["provisional"]]
    change_times = sorted(
        (pd.Timestamp(c.day).tz_localize(zone(tz), nonexistent="shift_forward", ambiguous=True), c)
        for c in changes
    )
    seg = segments_from_changes(list(used["period_start"]), [t for t, _ in change_times])
    kind: Chart = chart if measure == "proportion" else "xmr"
    if kind == "pprime":
        result = laney_p_prime(
            used["failures"].astype(float).to_numpy(),
            used["opportunities"].astype(float).to_numpy(),
            segment=seg,
            improvement=improvement,
            baseline=baseline,
        )
    else:
        result = xmr(
            used["value"].to_numpy(),
            segment=seg,
            improvement=improvement,
            screen_outliers=screen_outliers,
            baseline=baseline,
        )
    result.index = used.index
    summary = summarise(result, target, improvement)
    limit_points = 0
    if summary is not None and not np.isnan(summary.upper):
        limit_points = min(summary.segment_points, baseline or summary.segment_points)
    result = result.drop(columns=["y"])
    points = points.join(result)
    points["rule"] = points["rule"].fillna("")
    points["variation"] = points["variation"].fillna("")
    # whole numbers stay whole where provisional points have none (NaN made them floats)
    points["segment"] = points["segment"].astype("Int64")
    points["direction"] = points["direction"].astype("Int64")
    points = points[list(POINT_COLUMNS)]
    # which changes actually started a segment: the first used period on or after each
    starts = used["period_start"].reset_index(drop=True)
    applied = []
    for t, c in change_times:
        pos = int(pd.DatetimeIndex(starts).searchsorted(t)) if len(starts) else 0
        if 0 < pos < len(starts):
            applied.append((pd.Timestamp(starts[pos]), c))
    return SeriesChart(
        detector,
        group,
        measure,
        kind,
        points,
        summary,
        target,
        applied,
        limit_points=limit_points,
        baseline=baseline,
    )


def summary_table(charts: Sequence[SeriesChart], by: Sequence[str] = ()) -> pd.DataFrame:
    """The Making-Data-Count summary: one row per series, its last point's state."""
    rows = []
    for c in charts:
        s = c.summary
        last = c.points.iloc[-1] if len(c.points) else None
        used = c.points[~c.points["provisional"]]
        rows.append(
            {
                "detector": c.detector,
                **{k: c.group.get(k, "") for k in by},
                "measure": c.measure,
                "chart": "p′" if c.chart == "pprime" else "XmR",
                "points": len(used),
                "latest_period": used["period_start"].iloc[-1].date().isoformat()
                if len(used)
                else "",
                "latest": s.latest if s else np.nan,
                "mean": s.centre if s else np.nan,
                "lower": s.lower if s else np.nan,
                "upper": s.upper if s else np.nan,
                "variation": s.icon if s else "no data",
                "assurance": (s.assurance if s else "")
                or ("no target" if c.target is None else ""),
                "target": c.target,
                "trial_limits": bool(s.trial) if s else True,
                "limit_points": c.limit_points,
                "rare_events": c.rare_events,
                "provisional_periods": int(c.points["provisional"].sum()),
                "last_shown_provisional": bool(last["provisional"]) if last is not None else False,
            }
        )
    columns = [SUMMARY_COLUMNS[0], *by, *SUMMARY_COLUMNS[1:]]
    return pd.DataFrame(rows, columns=columns)
