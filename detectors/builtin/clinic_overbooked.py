"""``clinic-overbooked``: a clinic session must not hold more live bookings than its capacity.

Keyed by session, not by patient (so the Kafka runtime partitions its input by session).
Session events are applied in event-time order once the watermark passes them, which makes
the count at every moment independent of arrival order. A session with a known capacity is
one opportunity: one ``violation`` the first time it goes over, else ``met`` once the
watermark passes its start.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from detectors.contract import Context, ViolationDetector, human_time
from detectors.errors import EventError
from detectors.events import Event, parse_time
from detectors.records import Outcome, failure_id

__all__ = ["ClinicOverbooked"]

_EVENT, _START = 0, 1  # at equal times, apply events before deciding at the session start


@mypyc_attr(serializable=True)
class _Session:
    __slots__ = ("attrs", "booked", "capacity", "first_at", "over", "sid", "start", "timer")

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.capacity: int | None = None
        self.start: float | None = None
        self.booked: set[str] = set()
        self.over = False
        self.first_at: float | None = None
        self.attrs: dict[str, Any] = {}
        self.timer: float | None = None


def _start_of(ev: Event) -> float | None:
    start = ev.attrs.get("start")
    if not start:
        return None
    try:
        return parse_time(start, field_name="attrs.start")
    except EventError:
        return None


@mypyc_attr(allow_interpreted_subclasses=True)
class ClinicOverbooked(ViolationDetector):
    """Live bookings in a clinic session never exceed its capacity."""

    name: ClassVar[str] = "clinic-overbooked"
    partition_by: ClassVar[str] = "session"

    def __init__(self, retention: float = 30 * 86400.0) -> None:
        #: how long (s) a decided session id is remembered so late bookings don't revive it
        self.retention = retention
        self.sessions: dict[str, _Session] = {}
        self.where: dict[str, str] = {}  # appointment -> session it is booked in
        self.decided: dict[str, float] = {}  # session -> start, for sessions already decided
        self._pending: list[tuple[float, int, str, Any]] = []
        self._forget: list[tuple[float, str]] = []  # (start, session) of decided sessions

    @property
    def reads(self) -> frozenset[str]:
        return frozenset(
            (
                "session.capacity",
                "appointment.booked",
                "appointment.rescheduled",
                "appointment.cancelled",
            )
        )

    def on_event(self, event: Event, ctx: Context) -> None:
        if event.type != "session.capacity" and "appointment" not in event.refs:
            return
        if event.time < ctx.watermark:
            self._apply(event, ctx)  # beyond the allowed lateness: apply as it comes
        else:
            heapq.heappush(self._pending, (event.time, _EVENT, event.id, event))

    def on_watermark(self, ctx: Context) -> None:
        pending = self._pending
        wm = ctx.watermark
        while pending and pending[0][0] <= wm:
            _, kind, ident, payload = heapq.heappop(pending)
            if kind == _EVENT:
                self._apply(payload, ctx)
            else:
                self._decide(ident, payload, ctx)
        forget = self._forget
        cutoff = wm - self.retention
        while forget and forget[0][0] < cutoff:
            _, sid = heapq.heappop(forget)
            self.decided.pop(sid, None)

    # -- applying events in event-time order

    def _session(self, sid: str) -> _Session | None:
        if sid in self.decided:
            return None
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = _Session(sid)
        return s

    def _apply(self, ev: Event, ctx: Context) -> None:
        if ev.type == "session.capacity":
            sid = ev.refs.get("session")
            s = self._session(sid) if sid else None
            if s is None or sid is None:
                return
            cap = ev.attrs.get("capacity")
            if not isinstance(cap, int) or isinstance(cap, bool) or cap < 0:
                return
            s.capacity = cap
            if s.first_at is None:
                s.first_at = ev.time
            for k in ("clinic", "site", "specialty"):
                if k in ev.attrs:
                    s.attrs[k] = ev.attrs[k]
            start = _start_of(ev)
            if start is not None:
                if s.start is None:
                    heapq.heappush(self._pending, (start, _START, sid, start))
                s.start = start
            self._check(s, ev, ctx)
            return
        appt = ev.refs["appointment"]
        old = self.where.pop(appt, None)
        if old is not None and old in self.sessions:
            self.sessions[old].booked.discard(appt)
        if ev.type == "appointment.cancelled":
            return
        sid = ev.refs.get("session")
        if not sid:
            return
        s = self._session(sid)
        if s is None:
            return
        if s.start is None and s.timer is None:
            # no capacity yet: still forget the session once its bookings have started
            s.timer = _start_of(ev)
            if s.timer is not None:
                heapq.heappush(self._pending, (s.timer, _START, sid, s.timer))
        s.booked.add(appt)
        self.where[appt] = sid
        self._check(s, ev, ctx)

    def _check(self, s: _Session, ev: Event, ctx: Context) -> None:
        if s.over or s.capacity is None or len(s.booked) <= s.capacity:
            return
        s.over = True
        attrs = dict(s.attrs, capacity=s.capacity, booked=len(s.booked))
        summary = (
            f"Clinic session {s.sid} now has {len(s.booked)} live bookings for "
            f"{s.capacity} places (at {human_time(ev.time)})."
        )
        ctx.emit(
            Outcome(
                failure_id=failure_id(self.name, s.sid, s.sid),
                detector=self.name,
                outcome="violation",
                key=s.sid,
                patient=None,
                refs={"session": s.sid},
                opened_at=ev.time,
                due_at=s.start,
                closed_at=None,
                detected_at=ctx.watermark,
                evidence=[ev.id],
                attrs=attrs,
                summary=summary,
            )
        )

    def _decide(self, sid: str, start: float, ctx: Context) -> None:
        s = self.sessions.get(sid)
        if s is None:
            return
        if s.start is not None and s.start > start:
            # the timer came from a booking; the session's own start is later
            heapq.heappush(self._pending, (s.start, _START, sid, s.start))
            return
        del self.sessions[sid]
        for appt in s.booked:
            if self.where.get(appt) == sid:
                del self.where[appt]
        self.decided[sid] = start
        heapq.heappush(self._forget, (start, sid))
        if s.over or s.capacity is None:
            return
        ctx.emit(self._met(s, ctx.watermark))

    def _met(self, s: _Session, wm: float, outcome: str = "met") -> Outcome:
        return Outcome(
            failure_id=failure_id(self.name, s.sid, s.sid),
            detector=self.name,
            outcome=outcome,
            key=s.sid,
            patient=None,
            refs={"session": s.sid},
            opened_at=s.first_at if s.first_at is not None else wm,
            due_at=s.start,
            closed_at=None,
            detected_at=wm,
            evidence=[],
            attrs=dict(s.attrs, capacity=s.capacity, booked=len(s.booked)),
            summary=f"Clinic session {s.sid} stayed within its {s.capacity} places.",
        )

    # -- reporting and state

    def open_count(self) -> int:
        return sum(1 for s in self.sessions.values() if s.capacity is not None and not s.over)

    def open_records(self, watermark: float) -> list[Outcome]:
        out = []
        for s in self.sessions.values():
            if s.capacity is not None and not s.over:
                o = self._met(s, watermark, "open")
                o.summary = f"Clinic session {s.sid} has not started yet."
                out.append(o)
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "sessions": [
                [s.sid, s.capacity, s.start, sorted(s.booked), s.over, s.first_at, s.attrs, s.timer]
                for s in self.sessions.values()
            ],
            "where": dict(self.where),
            "decided": dict(self.decided),
            "pending": [
                [t, kind, ident, payload.to_dict() if kind == _EVENT else payload]
                for t, kind, ident, payload in self._pending
            ],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        from detectors.events import event_from_dict

        self.sessions = {}
        for sid, cap, start, booked, over, first_at, attrs, timer in state["sessions"]:
            s = _Session(sid)
            s.timer = timer
            s.capacity, s.start, s.booked, s.over = cap, start, set(booked), over
            s.first_at, s.attrs = first_at, dict(attrs)
            self.sessions[sid] = s
        self.where = dict(state["where"])
        self.decided = {k: float(v) for k, v in state["decided"].items()}
        self._forget = [(start, sid) for sid, start in self.decided.items()]
        heapq.heapify(self._forget)
        self._pending = [
            (t, kind, ident, event_from_dict(p) if kind == _EVENT else p)
            for t, kind, ident, p in state["pending"]
        ]
        heapq.heapify(self._pending)
