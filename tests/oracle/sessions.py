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
from typing import Any

import numpy as np
import pandas as pd

from detectors.contract import human_time
from detectors.records import Outcome, failure_id
from tests.oracle.clock import Clock
from tests.oracle.frame import ColumnPlan, EventFrame, epoch_of, has_type

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


def _session_rows(table: pd.DataFrame, watermark: float) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (session, event) that changes the session, and the session ids.

    Rows: ``sid`` (a code into the session ids), ``pos`` (place in event-time order),
    ``time``, ``id``, ``row``, ``delta`` (+1/-1/0 live bookings), ``adds`` (the event books
    into it), ``places`` and ``start`` (capacity rows), ``booking_start`` (bookings), then
    the state after the row: ``booked``, ``capacity``, ``start_now``, ``over``; sorted by
    session and position. Only events at or before the watermark count: the streaming
    detector has not applied later ones.
    """
    reads = table[table["type"].isin((_CAPACITY, *_MOVES)) & (table["time"] <= watermark)]
    is_cap = (reads["type"] == _CAPACITY).to_numpy()
    sid = reads["refs.session"]
    has_sid = (sid.notna() & (sid != "")).to_numpy()
    places = _valid_capacity(reads["attrs.capacity"].where(is_cap, None))
    keep = (is_cap & has_sid & ~np.isnan(places)) | (~is_cap & reads["refs.appointment"].notna())
    reads = reads[keep].assign(
        places=places[keep], start=epoch_of(reads["attrs.start"][keep]), named=has_sid[keep]
    )
    reads = reads.reset_index(names="row").sort_values(["time", "id"], kind="stable")
    reads["pos"] = np.arange(len(reads))
    is_cap = (reads["type"] == _CAPACITY).to_numpy()
    # the session each event puts its appointment (or capacity) into, as integer codes
    names = reads["refs.session"].where(reads["named"] & (reads["type"] != "appointment.cancelled"))
    codes, sessions = pd.factorize(names.to_numpy(dtype=object))
    reads["into"] = codes  # -1: none

    moves = reads[~is_cap]
    came_from = moves.groupby("refs.appointment", sort=False)["into"].shift(1, fill_value=-1)
    into = moves["into"]
    cols = ["pos", "time", "id", "row"]
    # a reschedule within one session takes the appointment out and back in: one row, 0
    adds = moves.loc[into >= 0, cols].assign(
        sid=into[into >= 0],
        delta=np.where(came_from == into, 0, 1)[(into >= 0).to_numpy()],
        adds=True,
        booking_start=moves.loc[into >= 0, "start"],
    )
    out = (came_from >= 0) & (came_from != into)
    leaves = moves.loc[out, cols].assign(sid=came_from[out], delta=-1, adds=False)
    caps = reads.loc[is_cap, [*cols, "places", "start"]].assign(
        sid=reads.loc[is_cap, "into"], delta=0, adds=False
    )
    rows = pd.concat([caps, adds, leaves], ignore_index=True)
    rows = rows.sort_values(["sid", "pos"], kind="stable", ignore_index=True)
    by_sid = rows.groupby("sid", sort=False)
    rows["booked"] = by_sid["delta"].cumsum()
    rows["capacity"] = by_sid["places"].ffill()
    rows["start_now"] = by_sid["start"].ffill()
    rows["over"] = rows["capacity"].notna() & (rows["booked"] > rows["capacity"])
    return rows, np.asarray(sessions, dtype=object)


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
    rows, names = _session_rows(frame.table, clock.watermark)
    if rows.empty:
        return [], []
    sessions = pd.DataFrame({"sid": rows["sid"].unique()})
    sessions = sessions.merge(_decisions(rows, clock.watermark), on="sid", how="left")
    sessions["is_decided"] = sessions["cutoff"].notna()
    # an undecided session holds every row applied so far
    last = rows.groupby("sid", sort=False)["pos"].max()
    sessions["cutoff"] = sessions["cutoff"].fillna(sessions["sid"].map(last)).astype(np.int64)
    sessions["fired"] = sessions["fired"].fillna(clock.watermark)
    over = rows[rows["over"]].groupby("sid", sort=False)["pos"].first()
    tip = sessions["sid"].map(over)
    sessions["tip"] = tip.where(tip <= sessions["cutoff"])
    first_at = rows[rows["places"].notna()].groupby("sid", sort=False)["time"].first()
    sessions["first_at"] = sessions["sid"].map(first_at)

    records = _Records(frame, clock, names, rows)
    tipped = sessions[sessions["tip"].notna()]
    at_tip = _state_at(rows, tipped["sid"], tipped["tip"].to_numpy())
    decided = [
        records.violation(sid, pos, t, eid, row, booked, start)
        for sid, pos, t, eid, row, booked, start in zip(
            at_tip["sid"].tolist(),
            at_tip["pos"].tolist(),
            at_tip["time"].tolist(),
            at_tip["id"].tolist(),
            at_tip["row"].tolist(),
            at_tip["booked"].tolist(),
            at_tip["start_now"].tolist(),
            strict=True,
        )
    ]
    calm = sessions[sessions["tip"].isna()]
    end = _state_at(rows, calm["sid"], calm["cutoff"].to_numpy())
    with_capacity = end["capacity"].notna().to_numpy()
    calm, end = calm[with_capacity], end[with_capacity]
    still_open = []
    for sid, is_decided, cutoff, fired, booked, start, first in zip(
        calm["sid"].tolist(),
        calm["is_decided"].tolist(),
        calm["cutoff"].tolist(),
        calm["fired"].tolist(),
        end["booked"].tolist(),
        end["start_now"].tolist(),
        calm["first_at"].tolist(),
        strict=True,
    ):
        if is_decided:
            decided.append(records.met(sid, cutoff, fired, booked, start, first))
        else:
            still_open.append(records.still_open(sid, cutoff, booked, start, first))
    return decided, still_open


class _Records:
    """Outcome records of sessions. The capacity and the session attrs come from the
    session's own ``session.capacity`` events up to the decision (a handful per session,
    walked in order: the latest event that carries an attribute sets it)."""

    def __init__(
        self, frame: EventFrame, clock: Clock, names: np.ndarray, rows: pd.DataFrame
    ) -> None:
        self.events = frame.events
        self.clock = clock
        self.names = names
        self.capacity_rows: dict[int, list[tuple[int, int]]] = defaultdict(list)
        caps = rows[rows["places"].notna()]
        for sid, pos, row in zip(caps["sid"], caps["pos"], caps["row"], strict=True):
            self.capacity_rows[sid].append((pos, row))

    def _attrs(self, sid: int, cutoff: int, booked: int) -> tuple[dict[str, Any], int]:
        attrs: dict[str, Any] = {}
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

    def _outcome(self, sid: int, outcome: str, **fields: Any) -> Outcome:
        session = str(self.names[sid])
        return Outcome(
            failure_id=failure_id(NAME, session, session),
            detector=NAME,
            outcome=outcome,
            key=session,
            patient=None,
            refs={"session": session},
            closed_at=None,
            **fields,
        )

    def violation(
        self, sid: int, pos: int, t: float, eid: str, row: int, booked: int, start: float
    ) -> Outcome:
        """The session went over capacity at position ``pos`` (event ``eid``, frame row
        ``row``, at ``t``)."""
        attrs, capacity = self._attrs(sid, pos, booked)
        return self._outcome(
            sid,
            "violation",
            opened_at=t,
            due_at=_or_none(start),
            detected_at=float(self.clock.detected_at(np.array([t]))[0]),
            evidence=[eid],
            evidence_events=[(self.events[row].type, t)],
            attrs=attrs,
            summary=(
                f"Clinic session {self.names[sid]} now has {booked} live bookings for "
                f"{capacity} places (at {human_time(t)})."
            ),
        )

    def met(
        self, sid: int, cutoff: int, fired: float, booked: int, start: float, first_at: float
    ) -> Outcome:
        """The session stayed within capacity until its start (decided at ``fired``)."""
        attrs, capacity = self._attrs(sid, cutoff, booked)
        return self._outcome(
            sid,
            "met",
            opened_at=first_at,
            due_at=_or_none(start),
            detected_at=float(self.clock.detected_at(np.array([fired]))[0]),
            evidence=[],
            attrs=attrs,
            summary=f"Clinic session {self.names[sid]} stayed within its {capacity} places.",
        )

    def still_open(
        self, sid: int, cutoff: int, booked: int, start: float, first_at: float
    ) -> Outcome:
        """The session has not started by the watermark."""
        attrs, _ = self._attrs(sid, cutoff, booked)
        return self._outcome(
            sid,
            "open",
            opened_at=first_at,
            due_at=_or_none(start),
            detected_at=self.clock.watermark,
            evidence=[],
            attrs=attrs,
            summary=f"Clinic session {self.names[sid]} has not started yet.",
        )


def _or_none(t: float) -> float | None:
    return None if np.isnan(t) else t
