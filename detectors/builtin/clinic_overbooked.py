"""``clinic-overbooked``: a clinic session must not hold more live bookings than its capacity.

Keyed by session, not by patient (so the Kafka runtime partitions its input by session).
Session events are applied in event-time order once the watermark passes them, which makes
the count at every moment independent of arrival order. A session with a known capacity is
one opportunity: one ``violation`` the first time it goes over, else ``met`` once the
watermark passes its start.

Events that arrive behind the watermark (beyond the allowed lateness, within the
correction horizon) are not applied as they come: every booking, move, cancellation and
capacity event is kept for the horizon, and a late one has each session it concerns
worked out again from those, in event-time order, as an in-order delivery would have
worked it out. Where that changes what was reported, the session's record is amended: a
violation the late event makes (or moves), or a violation it takes back (then ``met``,
amended from ``violation``: a withdrawn failure, also before the session starts).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any, ClassVar

from detectors.contract import Context, ViolationDetector, human_time
from detectors.errors import EventError
from detectors.events import Event, parse_time
from detectors.records import Outcome, failure_id

__all__ = ["ClinicOverbooked"]

_EVENT, _START = 0, 1  # at equal times, apply events before deciding at the session start

#: a booking, move or cancellation of an appointment, kept for the horizon: event time,
#: event id, the session it books into (``None``: a cancellation, or no session named),
#: and the session start the booking names (``attrs.start``), if any
_Move = tuple[float, str, str | None, float | None, str]
#: a capacity event of a session, kept for the horizon: event time, event id, capacity,
#: session start (if given), and the clinic/site/specialty attrs it carries
_Capacity = tuple[float, str, int, float | None, dict[str, Any]]
#: what was last reported for a session: outcome, opened_at, due_at, evidence (the id
#: and type of the booking that overbooked it), attrs
_Reported = tuple[str, float, float | None, list[tuple[str, str]], dict[str, Any]]
_ROUTED = ("clinic", "site", "specialty")


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


class ClinicOverbooked(ViolationDetector):
    """Live bookings in a clinic session never exceed its capacity."""

    name: ClassVar[str] = "clinic-overbooked"
    measure: ClassVar[str] = "proportion"  # each session ends met or overbooked
    partition_by: ClassVar[str] = "session"

    def __init__(self, retention: float = 30 * 86400.0) -> None:
        #: how long (s) what could still change a session's outcome is kept: the engine's
        #: correction horizon (``configure``)
        self.retention = retention
        self.sessions: dict[str, _Session] = {}
        self.where: dict[str, str] = {}  # appointment -> session it is booked in
        self.decided: dict[str, float] = {}  # session -> start, for sessions already decided
        self._pending: list[tuple[float, int, str, Any]] = []
        self._forget: list[tuple[float, str]] = []  # (start, session) of decided sessions
        # Kept for the horizon, for working a session out again when an event comes late:
        self.moves: dict[str, list[_Move]] = {}  # appointment -> its events
        self.capacities: dict[str, list[_Capacity]] = {}  # session -> its capacity events
        self.members: dict[str, set[str]] = {}  # session -> appointments ever named in it
        self.reported: dict[str, _Reported] = {}  # session -> what was last reported
        self._last: dict[str, float] = {}  # appointment or session -> latest time it matters
        self._expiry: list[tuple[float, int, str]] = []  # (time, 0 appt / 1 session, id)

    def configure(self, *, correction_horizon: float) -> None:
        self.retention = correction_horizon

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
        touched = self._keep(event)
        if event.time <= ctx.watermark:
            # beyond the allowed lateness (or at the watermark, which events of its time
            # already passed through): what it changes is worked out again
            for sid in sorted(touched):
                self._rework(sid, ctx)
        else:
            heapq.heappush(self._pending, (event.time, _EVENT, event.id, event))

    # -- what is kept for the horizon

    def _keep(self, ev: Event) -> set[str]:
        """Keep ``ev`` for the horizon; the sessions whose outcome it can change."""
        t = ev.time
        if ev.type == "session.capacity":
            sid = ev.refs.get("session")
            cap = ev.attrs.get("capacity")
            if not sid or not isinstance(cap, int) or isinstance(cap, bool) or cap < 0:
                return set()
            routed = {k: ev.attrs[k] for k in _ROUTED if k in ev.attrs}
            start = _start_of(ev)
            if start is not None and t > start:
                return set()  # the session has started: its outcome is decided
            self.capacities.setdefault(sid, []).append((t, ev.id, cap, start, routed))
            self._note(1, sid, t if start is None or start < t else start)
            return {sid}
        appt = ev.refs["appointment"]
        sid = None if ev.type == "appointment.cancelled" else ev.refs.get("session") or None
        start = _start_of(ev) if sid is not None else None
        kept = self.moves.setdefault(appt, [])
        touched = {m[2] for m in kept if m[2] is not None}
        kept.append((t, ev.id, sid, start, ev.type))
        self._note(0, appt, t if start is None or start < t else start)
        if sid is not None:
            self.members.setdefault(sid, set()).add(appt)
            touched.add(sid)
        return touched

    def _note(self, kind: int, ident: str, t: float) -> None:
        """``ident`` (appointment or session) matters until at least event time ``t``."""
        if t > self._last.get(ident, float("-inf")):
            if ident not in self._last:
                heapq.heappush(self._expiry, (t, kind, ident))
            self._last[ident] = t

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
            at, sid = heapq.heappop(forget)
            if self.decided.get(sid) == at:  # (else a rework moved it: a later entry)
                del self.decided[sid]
                self.reported.pop(sid, None)
        expiry = self._expiry
        while expiry and expiry[0][0] < cutoff:
            t, kind, ident = heapq.heappop(expiry)
            last = self._last.get(ident, t)
            if last > t:  # it mattered again since: look again then
                heapq.heappush(expiry, (last, kind, ident))
                continue
            if ident in (self.where if kind == 0 else self.sessions):
                # booked in (or itself) a session still undecided: it can still matter
                self._last[ident] = wm
                heapq.heappush(expiry, (wm, kind, ident))
                continue
            del self._last[ident]
            if kind == 0:
                for move in self.moves.pop(ident, ()):
                    into = move[2]
                    members = self.members.get(into) if into is not None else None
                    if members is not None and into is not None:
                        members.discard(ident)
                        if not members and into not in self.capacities:
                            del self.members[into]
            else:
                self.capacities.pop(ident, None)
                if not self.members.get(ident):
                    self.members.pop(ident, None)

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
            start = _start_of(ev)
            if start is not None and ev.time > start:
                return  # given after the session started: its outcome is decided
            s.capacity = cap
            if s.first_at is None:
                s.first_at = ev.time
            for k in _ROUTED:
                if k in ev.attrs:
                    s.attrs[k] = ev.attrs[k]
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
        self._report(s.sid, ("violation", ev.time, s.start, [(ev.id, ev.type)], attrs), ctx)

    def _report(self, sid: str, rec: _Reported, ctx: Context) -> None:
        """Emit ``rec`` for session ``sid`` unless it is what was last reported; a record
        that replaces another says what it amends."""
        before = self.reported.get(sid)
        if before == rec:
            return
        self.reported[sid] = rec
        outcome, opened_at, due_at, evidence, attrs = rec
        booked, capacity = attrs.get("booked"), attrs.get("capacity")
        if outcome == "violation":
            summary = (
                f"Clinic session {sid} now has {booked} live bookings for {capacity} places "
                f"(at {human_time(opened_at, self.clock)})."
            )
        elif before is not None and before[0] == "violation":
            summary = (
                f"Clinic session {sid} is within its {capacity} places after all: a booking "
                "change recorded late takes back the overbooking reported earlier."
            )
        else:
            summary = f"Clinic session {sid} stayed within its {capacity} places."
        ctx.emit(
            Outcome(
                failure_id=failure_id(self.name, sid, sid),
                detector=self.name,
                outcome=outcome,
                key=sid,
                patient=None,
                refs={"session": sid},
                opened_at=opened_at,
                due_at=due_at,
                closed_at=None,
                detected_at=ctx.watermark,
                evidence=[i for i, _ in evidence],
                attrs=dict(attrs),
                summary=summary,
                amended_from=None if before is None else before[0],
                evidence_events=[(ty, opened_at) for _, ty in evidence],
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
        self._report(sid, self._met_record(s), ctx)

    @staticmethod
    def _met_record(s: _Session) -> _Reported:
        attrs = dict(s.attrs, capacity=s.capacity, booked=len(s.booked))
        opened = s.first_at if s.first_at is not None else float(s.start or 0.0)
        return ("met", opened, s.start, [], attrs)

    # -- working a session out again (an event came late)

    def _rework(self, sid: str, ctx: Context) -> None:
        """Work session ``sid`` out again from everything kept, in event-time order up to
        the watermark, exactly as the in-order path applies it; make the live state that
        result, and amend what was reported if it differs."""
        wm = ctx.watermark
        s, decided_at, violation = self._replay(sid, wm)
        if decided_at is None:
            self.decided.pop(sid, None)
            self.sessions[sid] = s
            for when in (s.start, s.timer):
                if when is not None:
                    heapq.heappush(self._pending, (when, _START, sid, when))
        else:
            self.sessions.pop(sid, None)
            if self.decided.get(sid) != decided_at:
                # decided then as the replay says (a late capacity can give the session
                # an earlier start than the booking that decided it): its record is
                # forgotten with the events it was worked out from, not later
                self.decided[sid] = decided_at
                heapq.heappush(self._forget, (decided_at, sid))
        for appt in self.members.get(sid, ()):
            now = self._booked_in(appt, wm)
            if now == sid and decided_at is None:
                self.where[appt] = sid
            elif self.where.get(appt) == sid:
                del self.where[appt]
        if violation is not None:
            self._report(sid, violation, ctx)
        elif decided_at is not None and s.capacity is not None:
            self._report(sid, self._met_record(s), ctx)
        elif self.reported.get(sid, ("",))[0] == "violation":
            # taken back before the session started: withdrawn now, decided at its start
            self._report(sid, self._met_record(s), ctx)

    def _booked_in(self, appt: str, wm: float) -> str | None:
        """The session ``appt`` is booked in as of watermark ``wm`` (its latest event)."""
        found = [m for m in self.moves.get(appt, ()) if m[0] <= wm]
        return max(found)[2] if found else None

    def _replay(self, sid: str, wm: float) -> tuple[_Session, float | None, _Reported | None]:
        """Session ``sid`` as the in-order path leaves it at watermark ``wm``: its state,
        when it was decided (``None``: not yet) and the violation it reported, if any."""
        steps: list[tuple[float, str, int, Any]] = []
        for given in self.capacities.get(sid, ()):
            steps.append((given[0], given[1], 1, given))
        for appt in self.members.get(sid, ()):
            for move in self.moves.get(appt, ()):
                steps.append((move[0], move[1], 0, (appt, move)))
        steps = [x for x in steps if x[0] <= wm]
        steps.sort(key=lambda x: (x[0], x[1]))
        s = _Session(sid)
        starts: list[float] = []
        violation: _Reported | None = None

        def decided_before(t: float, inclusive: bool) -> float | None:
            while starts and (starts[0] <= t if inclusive else starts[0] < t):
                at = heapq.heappop(starts)
                if s.start is not None and s.start > at:
                    heapq.heappush(starts, s.start)
                    continue
                return at
            return None

        for t, eid, kind, payload in steps:
            at = decided_before(t, inclusive=False)
            if at is not None:
                return s, at, violation
            if kind == 1:
                _, _, cap, start, routed = payload
                s.capacity = cap
                if s.first_at is None:
                    s.first_at = t
                s.attrs.update(routed)
                if start is not None:
                    if s.start is None:
                        heapq.heappush(starts, start)
                    s.start = start
            else:
                appt, (_, _, into, start, _) = payload
                if into != sid:
                    s.booked.discard(appt)
                    continue
                if s.start is None and s.timer is None and start is not None:
                    s.timer = start
                    heapq.heappush(starts, start)
                s.booked.add(appt)
            if not s.over and s.capacity is not None and len(s.booked) > s.capacity:
                s.over = True
                attrs = dict(s.attrs, capacity=s.capacity, booked=len(s.booked))
                etype = "session.capacity" if kind == 1 else payload[1][4]
                violation = ("violation", t, s.start, [(eid, etype)], attrs)
        return s, decided_before(wm, inclusive=True), violation

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
            "moves": {appt: [list(m) for m in kept] for appt, kept in self.moves.items()},
            "capacities": {sid: [list(c) for c in kept] for sid, kept in self.capacities.items()},
            "reported": {sid: list(r) for sid, r in self.reported.items()},
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
        self.moves, self.capacities, self.members = {}, {}, {}
        self._last, self._expiry = {}, []
        for appt, kept in state.get("moves", {}).items():
            # (a snapshot of an older Carewatch kept no event type)
            moves = [(float(m[0]), m[1], m[2], m[3], m[4] if len(m) > 4 else "") for m in kept]
            self.moves[appt] = moves
            for t, _, into, start, _ in moves:
                self._note(0, appt, t if start is None or start < t else start)
                if into is not None:
                    self.members.setdefault(into, set()).add(appt)
        for sid, kept in state.get("capacities", {}).items():
            caps = [(float(t), i, cap, start, dict(r)) for t, i, cap, start, r in kept]
            self.capacities[sid] = caps
            for t, _, _, start, _ in caps:
                self._note(1, sid, t if start is None or start < t else start)
        self.reported = {
            sid: (
                o,
                float(a),
                d,
                [(e, "") if isinstance(e, str) else (e[0], e[1]) for e in ev],
                dict(at),
            )
            for sid, (o, a, d, ev, at) in state.get("reported", {}).items()
        }
