"""The expectation shape ("B must follow A for the same key within T"), over whole columns.

For every opening row, the earliest counting closing and voiding rows come from an
as-of join (``merge_asof``, forward, by key): the first at or after ``t_a``, ties going to
the smaller event id. The outcome then follows from ``docs/detectors.md`` with the
watermark of ``Clock``. A detector family only has to say which rows open (with their
deadline), close and void: its ``Sides``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from detectors.contract import ExpectationDetector
from detectors.records import Outcome, failure_id
from tests.oracle.clock import Clock
from tests.oracle.frame import ColumnPlan, EventFrame
from tests.oracle.summaries import TextCache, expectation_summaries, uses_base_summary

__all__ = [
    "ExpectationForm",
    "Sides",
    "events_of",
    "expectation_records",
    "of_types",
    "once_per_key",
    "openers",
    "resolve",
]

INF = np.inf


@dataclass(frozen=True)
class Sides:
    """The rows of one expectation rule.

    ``opens``: ``row`` (into the frame), ``key``, ``time``, ``due`` (epoch s UTC), only
    rows that open an opportunity. ``closes`` and ``voids``: ``key``, ``time``, ``id``, only
    rows that count.
    """

    opens: pd.DataFrame
    closes: pd.DataFrame
    voids: pd.DataFrame
    #: voiding event id -> the ``attrs.void_reason`` of what it voids (the few that say)
    reasons: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpectationForm:
    """How the oracle reads one expectation detector: the frame columns it needs and its
    sides."""

    needs: Callable[[ExpectationDetector], ColumnPlan]
    sides: Callable[[ExpectationDetector, pd.DataFrame], Sides]


def of_types(table: pd.DataFrame, types: Sequence[str], *columns: str) -> pd.DataFrame:
    """``type``, ``time``, ``id`` and ``columns`` of the rows of ``table`` of these event
    types, keeping their row numbers."""
    return table.loc[table["type"].isin(types).to_numpy(), ["type", "time", "id", *columns]]


def events_of(rows: pd.DataFrame, mask: np.ndarray, key: str) -> pd.DataFrame:
    """``key``, ``time``, ``id`` of the ``rows`` in ``mask`` that carry the key column
    ``key``."""
    picked = rows.loc[mask, [key, "time", "id"]]
    return picked[picked[key].notna()].rename(columns={key: "key"})


def openers(rows: pd.DataFrame, key: str, due: np.ndarray) -> pd.DataFrame:
    """Opening rows: those of ``rows`` with the key column ``key`` and a deadline (``due``,
    epoch s UTC, one per row, ``NaN`` where the row opens nothing)."""
    mask = rows[key].notna().to_numpy() & ~np.isnan(due)
    return pd.DataFrame(
        {
            "row": rows.index.to_numpy()[mask],
            "key": pd.Series(rows[key].to_numpy()[mask], dtype=object),
            "time": rows["time"].to_numpy()[mask],
            "due": due[mask],
        }
    )


def once_per_key(sides: Sides, table: pd.DataFrame) -> Sides:
    """For a detector whose key opens once: of each key's opening rows, the one with the
    earliest time (ties: the smaller event id)."""
    opens = sides.opens
    if opens.empty:
        return sides
    ids = table["id"].to_numpy(dtype=object)[opens["row"].to_numpy()]
    ranked = opens.assign(_id=ids).sort_values(["key", "time", "_id"], kind="stable")
    kept = ranked.drop_duplicates("key").drop(columns="_id")
    return Sides(kept, sides.closes, sides.voids, sides.reasons)


def _smallest_id_per_time(events: pd.DataFrame, time: str) -> pd.DataFrame:
    """One row per (``code``, ``time``): the one with the smallest id, so that the as-of
    join's pick follows the tie rule. Ties are rare, so only they are sorted by id."""
    tied = events.duplicated(["code", time], keep=False).to_numpy()
    if not tied.any():
        return events
    ties = events[tied].sort_values(["code", time, f"{time}_id"])
    return pd.concat([events[~tied], ties.drop_duplicates(["code", time])])


def _first_at_or_after(opens: pd.DataFrame, events: pd.DataFrame, name: str) -> pd.DataFrame:
    """Adds ``name`` (time) and ``name_id`` of the earliest event of the key at or after each
    opening row; ``inf`` and ``None`` where there is none."""
    if events.empty or opens.empty:
        return opens.assign(**{name: INF, f"{name}_id": None})
    # keys as integer codes shared by both sides: a faster and dtype-proof join
    codes, _ = pd.factorize(
        np.concatenate([opens["key"].to_numpy(dtype=object), events["key"].to_numpy(dtype=object)])
    )
    left = opens.assign(code=codes[: len(opens)])
    right = pd.DataFrame(
        {
            "code": codes[len(opens) :],
            name: events["time"].to_numpy(),
            f"{name}_id": pd.Series(events["id"].to_numpy(), dtype=object),
        }
    )
    right = _smallest_id_per_time(right, name).sort_values(name, kind="stable")
    joined = pd.merge_asof(
        left,
        right,
        left_on="time",
        right_on=name,
        by="code",
        direction="forward",
        allow_exact_matches=True,
    ).drop(columns="code")
    joined[name] = joined[name].fillna(INF)
    return joined


def resolve(sides: Sides, clock: Clock, late_retention: float) -> pd.DataFrame:
    """Every opportunity of ``sides`` with its ``outcome`` at the clock's watermark
    (``open`` when undecided), ``closed_at``, ``closer`` (event id), ``decided_at`` (the
    time whose passing decided it, epoch s UTC) and ``amended`` (a late that was first
    declared missed). ``late_retention`` is in seconds."""
    opens = sides.opens.sort_values("time", kind="stable")
    opens = _first_at_or_after(opens, sides.closes, "b")
    opens = _first_at_or_after(opens, sides.voids, "z")
    b = opens["b"].to_numpy(dtype=np.float64)
    due = opens["due"].to_numpy(dtype=np.float64)
    z = opens["z"].to_numpy(dtype=np.float64)
    z = np.where(z <= due, z, np.inf)  # a void after the deadline changes nothing
    wm = clock.watermark
    by_b = b <= z  # a tie goes to the closing event
    first = np.where(by_b, b, z)
    in_time = first <= due
    met = in_time & by_b & (first <= wm)
    void = in_time & ~by_b & (first <= wm)
    overdue = ~in_time & (due <= wm)
    # a missed turns late once the watermark passes b, if b came within the retention
    late = overdue & by_b & (b <= due + late_retention) & (b <= wm)
    missed = overdue & ~late
    outcome = np.select([met, void, late, missed], ["met", "void", "late", "missed"], "open")
    closer = np.where(met | late, opens["b_id"], np.where(void, opens["z_id"], None))
    # object dtype, or pandas would read the missing closers as NaN strings
    closer = pd.Series(closer, index=opens.index, dtype=object)
    return opens.assign(
        outcome=outcome,
        closed_at=np.where(met | late, b, np.where(void, z, np.nan)),
        closer=closer,
        decided_at=np.select([met | void, late, missed], [first, b, due], wm),
        amended=late,
    )


def expectation_records(
    det: ExpectationDetector,
    resolved: pd.DataFrame,
    frame: EventFrame,
    clock: Clock,
    texts: TextCache,
    reasons: Mapping[str, str] | None = None,
) -> tuple[list[Outcome], list[Outcome]]:
    """The outcome records of ``resolved`` opportunities: ``(decided, open)``. Refs, patient
    and carried attrs come from each opening event; the summary is ``det.summary``'s.
    ``reasons``: voiding event id -> ``attrs.void_reason`` of the opportunities it voids."""
    if resolved.empty:
        return [], []
    events = frame.events
    openings = [events[row] for row in resolved["row"].tolist()]
    keys = resolved["key"].tolist()
    outcomes = resolved["outcome"].tolist()
    carried = [det.carried_attrs(ev) for ev in openings]
    detected = clock.detected_at(resolved["decided_at"].to_numpy())
    closed = resolved["closed_at"].to_numpy(dtype=np.float64)
    summaries: list[str] | None = None
    if uses_base_summary(det):
        summaries = expectation_summaries(
            det,
            texts,
            outcomes,
            keys,
            [ev.refs for ev in openings],
            carried,
            resolved["time"].to_numpy(),
            resolved["due"].to_numpy(),
            closed,
            detected,
        )
    closed_at = closed.astype(object)
    closed_at[np.isnan(closed)] = None
    name = det.name
    once = det.opens_once_per_key
    ids = [ev.id for ev in openings]
    closers = resolved["closer"].tolist()
    evidence = [[i, closer] if closer else [i] for i, closer in zip(ids, closers, strict=True)]
    # each evidence event's own type and time (a death before the opening voids from the
    # opening on, but the evidence shows when the death was)
    wanted = {c for c in closers if c}
    by_id = {ev.id: ev for ev in events if ev.id in wanted}
    shown = [
        [(ev.type, ev.time), (by_id[c].type, by_id[c].time)] if c else [(ev.type, ev.time)]
        for ev, c in zip(openings, closers, strict=True)
    ]
    records = [
        Outcome(
            failure_id(name, key, key if once else i),
            name,
            outcome,
            key,
            ev.patient,
            ev.refs,
            t_a,
            due,
            closed,
            detected_at,
            proof,
            attrs,
            text,
            "missed" if amended else None,
            seen,
        )
        for ev, i, key, outcome, t_a, due, closed, detected_at, proof, attrs, text, amended, seen in zip(
            openings,
            ids,
            keys,
            outcomes,
            resolved["time"].tolist(),
            resolved["due"].tolist(),
            closed_at.tolist(),
            detected.tolist(),
            evidence,
            carried,
            summaries or [""] * len(ids),
            resolved["amended"].tolist(),
            shown,
            strict=True,
        )
    ]
    if summaries is None:
        for o in records:
            o.summary = det.summary(o)
    for o in records:
        if reasons and o.outcome == "void" and o.evidence[-1] in reasons:
            o.attrs = {**o.attrs, "void_reason": reasons[o.evidence[-1]]}
            o.summary = det.summary(o)
    is_open = [o.outcome == "open" for o in records]
    return (
        [o for o, pending in zip(records, is_open, strict=True) if not pending],
        [o for o, pending in zip(records, is_open, strict=True) if pending],
    )
