"""Measures: per detector (and per site, specialty or clinic), per period, how often it failed.

A period holds the opportunities *due* in it (a violation with no deadline: when it
happened), in the site's local time: days start at local midnight, weeks on Monday, months
on the 1st. For each period:

- ``opportunities``: decided opportunities that were due, not void (met, late, missed,
  and violations of a detector that also records met sessions, such as
  ``clinic-overbooked``); ``failures`` = late + missed + violations, and
  ``failure_proportion`` = failures / opportunities;
- a detector that records nothing but violations (``contact-after-death``) has no
  denominator: its measure is the count of violations, and periods without one count 0;
  which measure a detector has is decided by what it is (``measure_kinds``), not by the
  records a ledger happens to hold: an expectation detector whose opportunities are all
  still open is a proportion with no decided opportunity yet, not a count;
- ``complete`` is false for a period that ends after the ledger's horizon (the watermark
  had not passed its end: more opportunities may still fall due in it); ``open`` counts
  opportunities due in it and not yet decided; ``small`` marks fewer than 10
  opportunities. Such periods are shown as they are, and marked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from detectors.contract import Detector
from detectors.errors import ConfigError
from streams.qi.ledger import BY_FIELDS, Ledger

__all__ = [
    "PERIODS",
    "SMALL_DENOMINATOR",
    "Measure",
    "Period",
    "measure_kind",
    "measure_kinds",
    "measure_table",
    "parse_by",
    "period_starts",
    "zone",
]

Period = Literal["day", "week", "month"]
Measure = Literal["proportion", "count"]
PERIODS: tuple[str, ...] = ("day", "week", "month")
#: Fewer opportunities than this in a period is flagged as a small denominator.
SMALL_DENOMINATOR = 10

_OUTCOME_COLUMNS = ("met", "late", "missed", "void", "violation", "open")
#: Columns of the measures table, in order (the --by fields go after ``detector``).
COLUMNS = (
    "detector",
    "period_start",
    "period_end",
    "measure",
    "opportunities",
    "met",
    "late",
    "missed",
    "void",
    "violations",
    "failures",
    "failure_proportion",
    "open",
    "complete",
    "small",
)


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``, or a ``ConfigError`` saying how to write one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {name!r}; write e.g. Europe/London") from None


def parse_by(text: str | None) -> tuple[str, ...]:
    """``--by site,specialty`` as a tuple of known fields (in the order given)."""
    if not text:
        return ()
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    for f in fields:
        if f not in BY_FIELDS:
            raise ConfigError(f"--by {f}: not a field; choose from {', '.join(BY_FIELDS)}")
    if len(set(fields)) != len(fields):
        raise ConfigError(f"--by {text}: a field is named twice")
    return fields


def measure_kind(detector: type[Detector] | Detector) -> Measure | None:
    """The measure a detector (class or instance) declares (``Detector.measure``):
    ``"proportion"`` for an expectation detector (every opportunity is met, late, missed
    or void) and for ``clinic-overbooked`` (each session is met or a violation);
    ``"count"`` for other violation detectors (``contact-after-death``: no
    denominator); ``None`` for anything else."""
    cls = detector if isinstance(detector, type) else type(detector)
    if not issubclass(cls, Detector):
        return None
    kind = cls.measure
    return "proportion" if kind == "proportion" else "count" if kind == "count" else None


def measure_kinds(
    names: Iterable[str], detectors: Iterable[Detector] = ()
) -> tuple[dict[str, Measure], list[str]]:
    """The measure of each detector ``names`` names, from what the detector is: one of
    ``detectors`` (those a rules file declares: rules and plugins) or a built-in. Names
    neither knows are left out (``measure_table`` then goes by the ledger's records); the
    second value lists them, as notes for the user."""
    from detectors.builtin import BUILTINS

    known: dict[str, type[Detector] | Detector] = {
        name: cls for name, cls in BUILTINS.items() if isinstance(cls, type)
    }
    known.update({d.name: d for d in detectors})
    kinds: dict[str, Measure] = {}
    unknown: list[str] = []
    for name in sorted(set(names)):
        found = known.get(name)
        kind = measure_kind(found) if found is not None else None
        if kind is None:
            unknown.append(name)
        else:
            kinds[name] = kind
    return kinds, unknown


def period_starts(times: pd.Series, period: Period, tz: str) -> pd.Series:
    """Start of the local day, Monday-week or month holding each UTC time, as naive local
    wall-clock timestamps (``localize_starts`` makes them aware)."""
    local = times.dt.tz_convert(zone(tz)).dt.tz_localize(None)
    day = local.dt.floor("D")
    if period == "day":
        return day
    if period == "week":
        return day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    if period == "month":
        return day - pd.to_timedelta(day.dt.day - 1, unit="D")
    raise ConfigError(f"--period {period}: choose day, week or month")


def _next_start(starts: pd.DatetimeIndex, period: Period) -> pd.DatetimeIndex:
    if period == "day":
        return starts + pd.Timedelta(days=1)
    if period == "week":
        return starts + pd.Timedelta(days=7)
    return starts + pd.offsets.MonthBegin(1)


def localize_starts(naive: pd.DatetimeIndex, tz: str) -> pd.DatetimeIndex:
    """Naive local period starts as aware timestamps (a midnight skipped by a clock
    change moves forward to the first valid time)."""
    return naive.tz_localize(zone(tz), ambiguous=True, nonexistent="shift_forward")


def all_periods(first: pd.Timestamp, last: pd.Timestamp, period: Period) -> pd.DatetimeIndex:
    """Every naive local period start from ``first`` to ``last`` (both period starts)."""
    freq = {"day": "D", "week": "7D", "month": "MS"}[period]
    return pd.date_range(first, last, freq=freq)


def measure_table(
    ledger: Ledger,
    *,
    period: Period = "week",
    by: Sequence[str] = (),
    tz: str = "Europe/London",
    kinds: Mapping[str, Measure] | None = None,
) -> pd.DataFrame:
    """The measures table: one row per detector, ``by`` value(s) and period, in that
    order. Periods are local (``tz``); ``period_start``/``period_end`` are aware
    timestamps. ``kinds`` gives each detector's measure (``measure_kinds``); a detector
    it does not name is a proportion when the ledger holds a met, late, missed or void
    record of it, else a count. See the module docstring for what each column means."""
    by = list(by)
    frame = ledger.frame
    keys = ["detector", *by, "start"]
    if frame.empty:
        return pd.DataFrame(columns=["detector", *by, *COLUMNS[1:]])
    work = frame[["detector", *by, "outcome"]].copy()
    for col in ("detector", *by):
        # categories no latest record has (a superseded record's) would be index levels
        # that select nothing
        work[col] = work[col].cat.remove_unused_categories()
    work["start"] = period_starts(frame["due"], period, tz).to_numpy()
    counts = work.groupby([*keys, "outcome"], observed=True).size().unstack("outcome", fill_value=0)
    for name in _OUTCOME_COLUMNS:
        if name not in counts.columns:
            counts[name] = 0
    counts = counts[list(_OUTCOME_COLUMNS)].astype(np.int64)

    kinds = dict(kinds or {})
    decided = set(
        work[work["outcome"].isin(["met", "late", "missed", "void"])]["detector"].unique().tolist()
    )
    proportions = [
        d
        for d in set(work["detector"].unique().tolist())
        if kinds.get(d, "proportion" if d in decided else "count") == "proportion"
    ]
    is_count = ~counts.index.get_level_values("detector").isin(proportions)

    # a count measure's periods without a violation are zeros, not gaps
    count_detectors = sorted(set(counts.index.get_level_values("detector")[is_count]))
    if count_detectors:
        starts = all_periods(work["start"].min(), work["start"].max(), period)
        extra: list[tuple[object, ...]] = []
        for det in count_detectors:
            groups = counts.loc[[det]].index.droplevel("start").unique()
            for g in groups:
                g = g if isinstance(g, tuple) else (g,)
                extra.extend((*g, s) for s in starts)
        full = pd.MultiIndex.from_tuples(extra, names=keys)
        zeros = counts.reindex(full, fill_value=0)
        counts = pd.concat([counts[~is_count], zeros]).sort_index()
        is_count = counts.index.get_level_values("detector").isin(count_detectors)

    out = counts.reset_index()
    naive = pd.DatetimeIndex(out["start"])
    out["period_start"] = localize_starts(naive, tz)
    out["period_end"] = localize_starts(_next_start(naive, period), tz)
    out["measure"] = np.where(is_count, "count", "proportion")
    out["violations"] = out["violation"]
    opp = out["met"] + out["late"] + out["missed"] + out["violation"]
    out["failures"] = out["late"] + out["missed"] + out["violation"]
    out["opportunities"] = opp.where(~is_count).astype("Int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        prop = out["failures"] / opp
    out["failure_proportion"] = prop.where(~is_count & (opp > 0))
    horizon = ledger.horizon
    out["complete"] = out["period_end"] <= horizon if horizon is not None else False
    out["small"] = ~is_count & (opp < SMALL_DENOMINATOR)
    out = out[["detector", *by, *COLUMNS[1:]]]
    return out.sort_values(["detector", *by, "period_start"], kind="stable").reset_index(drop=True)
