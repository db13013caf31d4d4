"""``clinic-overbooked`` over columns: a clinic session must not hold more live bookings
than its capacity.

Session events are taken in event-time order (ties by id), as the streaming detector
applies them. Each appointment event puts its appointment into the session it names (a
booking, or a reschedule with ``refs.session``) or into none, taking it out of the one
its previous event put it in; so the live count of every session is a cumulative sum of
+1/-1 rows, and its capacity and start are forward fills of its ``session.capacity``
rows. A session is decided when the watermark passes its start: the streaming detector
sets a timer at the first known start (its capacity's, or the first booking's before any
capacity) and, when the start has moved later meanwhile, sets it again. Those chains of
timers are followed for every session at once, one round per re-set (rarely more than one).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from detectors.contract import human_time
from detectors.oracle.clock import Clock
from detectors.oracle.frame import ColumnPlan, EventFrame, epoch_of, has_type
from detectors.records import Outcome, failure_id

__all__ = ["clinic_overbooked", "needs"]

NAME = "clinic-overbooked"
_CAPACITY = "session.capacity"
_MOVES = ("appointment.booked", "appointment.rescheduled", "appointment.cancelled")
_SESSION_ATTRS = ("clinic", "site", "specialty")


def needs() -> ColumnPlan:
    """The frame columns this detector reads."""
    moves = frozenset(_MOVES)
    into = frozenset({_CAPACITY, "appointment.booked", "appointment.rescheduled"})
    return {
        "refs.session": into,
        "refs.appointment": moves,
        "attrs.capacity": frozenset({_CAPACITY}),
        "attrs.start": into,
    }


def _valid_capacity(values: pd.Series) -> np.ndarray:
    """Capacities the detector accepts: an int (not a bool) of at least 0; else NaN."""
    out = np.full(len(values), np.nan)
    is_int = has_type(values, int)
    out[is_int] = values[is_int].to_numpy(dtype=np.float64)
    out[out < 0] = np.nan
    return out


def _session_rows(table: pd.DataFrame, watermark: float) -> pd.DataFrame:
    """One row per (session, event) that changes the session: ``sid``, ``pos`` (place in
    event-time order), ``time``, ``id``, ``row``, ``delta`` (+1/-1/0 live bookings),
    ``adds`` (the event books into it), ``places`` and ``start`` (capacity rows),
    ``booking_start`` (bookings); sorted by session and position. Only events at or before
    the watermark count: the streaming detector has not applied later ones."""
    reads = table[table["type"].isin((_CAPACITY, *_MOVES)) & (table["time"] <= watermark)]
    is_cap = (reads["type"] == _CAPACITY).to_numpy()
    sid = reads["refs.session"]
    has_sid = (sid.notna() & (sid != "")).to_numpy()
    places = _valid_capacity(reads["attrs.capacity"].where(is_cap, None))
    keep = (is_cap & has_sid & ~np.isnan(places)) | (~is_cap & reads["refs.appointment"].notna())
    reads = reads[keep].assign(places=places[keep], start=epoch_of(reads["attrs.start"][keep]))
    reads = reads.reset_index(names="row").sort_values(["time", "id"], kind="stable")
    reads["pos"] = np.arange(len(reads))
    is_cap = (reads["type"] == _CAPACITY).to_numpy()

    moves = reads[~is_cap]
    into = moves["refs.session"].where(
        (moves["type"] != "appointment.cancelled") & moves["refs.session"].notna()
    )
    into = into.where(into != "")
    came_from = into.groupby(moves["refs.appointment"], sort=False).shift(1)
    cols = ["pos", "time", "id", "row"]
    adds = moves.loc[into.notna(), cols].assign(
        sid=into[into.notna()], delta=1, adds=True, booking_start=moves["start"][into.notna()]
    )
    leaves = moves.loc[came_from.notna(), cols].assign(
        sid=came_from[came_from.notna()], delta=-1, adds=False
    )
    caps = reads.loc[is_cap, [*cols, "places", "start"]].assign(
        sid=reads.loc[is_cap, "refs.session"], delta=0, adds=False
    )
    rows = pd.concat([caps, adds, leaves], ignore_index=True)
    # a reschedule within one session is a -1 and a +1 on the same event: one row
    rows = rows.groupby(["sid", "pos"], sort=True, as_index=False).agg(
        time=("time", "first"),
        id=("id", "first"),
        row=("row", "first"),
        delta=("delta", "sum"),
        adds=("adds", "any"),
        places=("places", "first"),
        start=("start", "first"),
        booking_start=("booking_start", "first"),
    )
    by_sid = rows.groupby("sid", sort=False)
    rows["booked"] = by_sid["delta"].cumsum()
    rows["capacity"] = by_sid["places"].ffill()
    rows["start_now"] = by_sid["start"].ffill()
    rows["over"] = rows["capacity"].notna() & (rows["booked"] > rows["capacity"])
    return rows


def _state_at(rows: pd.DataFrame, sid: pd.Series, cutoff: np.ndarray) -> pd.DataFrame:
    """The last row of each session ``sid`` at or before position ``cutoff``: its state
    then. Keeps the order of the queries."""
    query = pd.DataFrame({"sid": sid.to_numpy(), "cutoff": cutoff.astype(np.int64)})
    query["q"] = np.arange(len(query))
    found = pd.merge_asof(
        query.sort_values("cutoff", kind="stable"),
        rows.sort_values("pos", kind="stable"),
        left_on="cutoff",
        right_on="pos",
        by="sid",
        direction="backward",
    )
    return found.sort_values("q").reset_index(drop=True)


def _last_pos_by_time(rows: pd.DataFrame, sid: pd.Series, at: np.ndarray) -> np.ndarray:
    """For each session ``sid``, the position of its last row with time at or before
    ``at`` (-1 if none)."""
    query = pd.DataFrame({"sid": sid.to_numpy(), "at": at, "q": np.arange(len(sid))})
    found = pd.merge_asof(
        query.sort_values("at", kind="stable"),
        rows[["sid", "time", "pos"]].sort_values(["time", "pos"], kind="stable"),
        left_on="at",
        right_on="time",
        by="sid",
        direction="backward",
    ).sort_values("q")
    return found["pos"].fillna(-1).to_numpy(dtype=np.int64)


def _timer_chains(rows: pd.DataFrame) -> pd.DataFrame:
    """The first timer of each session: ``sid``, ``x`` (its time), ``pushed`` (position it
    was set at) and ``pushed_time``. One from the first capacity row with a start; one from
    the first booking with a start before that."""
    caps = rows[rows["places"].notna() & rows["start"].notna()]
    first_cap = caps.groupby("sid", sort=False).head(1)
    from_cap = pd.DataFrame(
        {
            "sid": first_cap["sid"].to_numpy(),
            "x": first_cap["start"].to_numpy(),
            "pushed": first_cap["pos"].to_numpy(),
            "pushed_time": first_cap["time"].to_numpy(),
        }
    )
    cap_pos = rows["sid"].map(first_cap.set_index("sid")["pos"]).fillna(np.inf).to_numpy()
    early = rows[rows["adds"] & rows["booking_start"].notna() & (rows["pos"] < cap_pos)]
    first_booking = early.groupby("sid", sort=False).head(1)
    from_booking = pd.DataFrame(
        {
            "sid": first_booking["sid"].to_numpy(),
            "x": first_booking["booking_start"].to_numpy(),
            "pushed": first_booking["pos"].to_numpy(),
            "pushed_time": first_booking["time"].to_numpy(),
        }
    )
    return pd.concat([from_cap, from_booking], ignore_index=True)


def _decisions(rows: pd.DataFrame, watermark: float) -> pd.DataFrame:
    """When each session is decided: ``sid``, ``cutoff`` (its rows up to this position
    count), ``fired`` (event time the watermark must pass). Sessions not decided by the
    watermark are absent."""
    chains = _timer_chains(rows)
    # a timer set in the past fires at once, right after the event that set it
    chains["fired"] = np.maximum(chains["x"], chains["pushed_time"])
    stops = []
    while not chains.empty:
        chains = chains[chains["fired"] <= watermark].reset_index(drop=True)
        if chains.empty:
            break
        x = chains["x"].to_numpy()
        cutoff = np.maximum(chains["pushed"].to_numpy(), _last_pos_by_time(rows, chains["sid"], x))
        start = _state_at(rows, chains["sid"], cutoff)["start_now"].to_numpy()
        done = np.isnan(start) | (start <= x)
        chains = chains.assign(cutoff=cutoff)
        stops.append(chains[done])
        # the start moved later: the timer is set again for it
        again = chains[~done].copy()
        again["x"] = start[~done]
        again["pushed"] = again["cutoff"]
        again["fired"] = np.maximum(again["x"], again["fired"])
        chains = again.drop(columns="cutoff")
    if not stops:
        return pd.DataFrame({"sid": [], "cutoff": [], "fired": []})
    decided = pd.concat(stops, ignore_index=True)
    decided = decided.sort_values(["fired", "cutoff", "x"], kind="stable")
    return decided.drop_duplicates("sid")[["sid", "cutoff", "fired"]]


def clinic_overbooked(frame: EventFrame, clock: Clock) -> tuple[list[Outcome], list[Outcome]]:
    """``(decided, open)`` records: one per session with a known capacity. A violation at
    the first row that takes its live bookings over capacity; met once the watermark
    passes its start; open before that."""
    rows = _session_rows(frame.table, clock.watermark)
    if rows.empty:
        return [], []
    sessions = pd.DataFrame({"sid": rows["sid"].unique()})
    decided = _decisions(rows, clock.watermark)
    sessions = sessions.merge(decided, on="sid", how="left")
    sessions["is_decided"] = sessions["cutoff"].notna()
    last = rows.groupby("sid", sort=False)["pos"].max()
    sessions["cutoff"] = sessions["cutoff"].fillna(sessions["sid"].map(last)).astype(np.int64)
    sessions["fired"] = sessions["fired"].fillna(clock.watermark)

    over = rows[rows["over"]].groupby("sid", sort=False).head(1).set_index("sid")
    tip = sessions["sid"].map(over["pos"])
    sessions["tip"] = tip.where(tip <= sessions["cutoff"])
    end = _state_at(rows, sessions["sid"], sessions["cutoff"].to_numpy())
    for column in ("booked", "capacity", "start_now"):
        sessions[column] = end[column].to_numpy()
    first_at = rows[rows["places"].notna()].groupby("sid", sort=False)["time"].first()
    sessions["first_at"] = sessions["sid"].map(first_at)
    sessions = sessions[sessions["tip"].notna() | sessions["capacity"].notna()]

    capacity_rows: dict[str, list[tuple[int, int]]] = defaultdict(list)
    caps = rows[rows["places"].notna()]
    for sid, pos, row in zip(caps["sid"], caps["pos"], caps["row"], strict=True):
        capacity_rows[sid].append((pos, row))
    builder = _Records(frame, clock, capacity_rows)

    tipped = sessions[sessions["tip"].notna()]
    at_tip = rows.set_index(["sid", "pos"]).loc[
        list(zip(tipped["sid"], tipped["tip"].astype(np.int64), strict=True))
    ]
    out = [
        builder.violation(sid, int(pos), float(t), eid, int(booked), start)
        for sid, (pos, t, eid, booked, start) in zip(
            tipped["sid"],
            zip(
                tipped["tip"].astype(np.int64),
                at_tip["time"],
                at_tip["id"],
                at_tip["booked"],
                at_tip["start_now"],
                strict=True,
            ),
            strict=True,
        )
    ]
    calm = sessions[sessions["tip"].isna()]
    still_open = []
    for sid, is_decided, cutoff, fired, booked, start, first in zip(
        calm["sid"],
        calm["is_decided"],
        calm["cutoff"],
        calm["fired"],
        calm["booked"],
        calm["start_now"],
        calm["first_at"],
        strict=True,
    ):
        o = builder.within(sid, int(cutoff), float(fired), int(booked), start, float(first))
        if is_decided:
            out.append(o)
        else:
            o.outcome = "open"
            o.detected_at = clock.watermark
            o.summary = f"Clinic session {sid} has not started yet."
            still_open.append(o)
    return out, still_open


class _Records:
    """Outcome records of sessions, with the capacity and session attrs taken from the
    session's own ``session.capacity`` events (a handful per session, walked in order:
    the latest event that carries an attribute sets it)."""

    def __init__(
        self, frame: EventFrame, clock: Clock, capacity_rows: dict[str, list[tuple[int, int]]]
    ) -> None:
        self.events = frame.events
        self.clock = clock
        self.capacity_rows = capacity_rows

    def _attrs(self, sid: str, cutoff: int, booked: int) -> tuple[dict[str, object], int]:
        attrs: dict[str, object] = {}
        capacity = 0
        for pos, row in self.capacity_rows[sid]:
            if pos > cutoff:
                break
            a = self.events[row].attrs
            capacity = a["capacity"]
            for k in _SESSION_ATTRS:
                if k in a:
                    attrs[k] = a[k]
        return dict(attrs, capacity=capacity, booked=booked), capacity

    def _detected(self, t: float) -> float:
        return float(self.clock.detected_at(np.array([t]))[0])

    def violation(
        self, sid: str, pos: int, t: float, eid: str, booked: int, start: float
    ) -> Outcome:
        attrs, capacity = self._attrs(sid, pos, booked)
        return Outcome(
            failure_id=failure_id(NAME, sid, sid),
            detector=NAME,
            outcome="violation",
            key=sid,
            patient=None,
            refs={"session": sid},
            opened_at=t,
            due_at=None if np.isnan(start) else start,
            closed_at=None,
            detected_at=self._detected(t),
            evidence=[eid],
            attrs=attrs,
            summary=(
                f"Clinic session {sid} now has {booked} live bookings for "
                f"{capacity} places (at {human_time(t)})."
            ),
        )

    def within(
        self, sid: str, cutoff: int, fired: float, booked: int, start: float, first_at: float
    ) -> Outcome:
        attrs, capacity = self._attrs(sid, cutoff, booked)
        return Outcome(
            failure_id=failure_id(NAME, sid, sid),
            detector=NAME,
            outcome="met",
            key=sid,
            patient=None,
            refs={"session": sid},
            opened_at=first_at,
            due_at=None if np.isnan(start) else start,
            closed_at=None,
            detected_at=self._detected(fired),
            evidence=[],
            attrs=attrs,
            summary=f"Clinic session {sid} stayed within its {capacity} places.",
        )
