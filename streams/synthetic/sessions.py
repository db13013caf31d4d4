"""Clinic sessions, the booking ledger of each, and the ``clinic-overbooked`` truth.

Every appointment event that moves an appointment into or out of a session is written
into that session's ledger as it is emitted. Once all appointments are decided, each
session of the window gets its capacity: above its peak of live bookings for most,
below it for the sessions chosen to be overbooked. The ``session.capacity`` event is
dated before the session's first booking, so the capacity is known throughout.
Sessions outside the window (reschedule targets) get no capacity and are no opportunity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random

from detectors.events import format_time
from streams.synthetic.allocate import allocate
from streams.synthetic.hospital import Clinic
from streams.synthetic.log import EventLog
from streams.synthetic.timing import DAY, HOUR, MINUTE, weekday
from streams.synthetic.truth import TruthBook

__all__ = ["Session", "SessionBook", "slot_length"]

#: Session start times after midnight UTC; a session lasts 3.5 hours.
HALF_STARTS = {"AM": 9 * HOUR, "PM": 13 * HOUR + 30 * MINUTE}
SESSION_LENGTH = 210 * MINUTE


def slot_length(clinic: Clinic) -> int:
    """Seconds between two appointment slots of ``clinic`` (a multiple of 5 minutes)."""
    return max(5 * MINUTE, (SESSION_LENGTH // clinic.capacity) // (5 * MINUTE) * 5 * MINUTE)


@dataclass(slots=True)
class Session:
    """One half-day session of a clinic; ``start`` in epoch s UTC; ``tracked`` sessions
    (those in the window) get a capacity and are ``clinic-overbooked`` opportunities."""

    id: str
    clinic: Clinic
    start: int
    tracked: bool
    #: ``(time, event id, +1 | -1)`` for every booking into and removal out of it.
    moves: list[tuple[int, str, int]] = field(default_factory=list)

    def slot(self, index: int) -> int:
        """Start of appointment slot ``index`` (epoch s UTC); slots past the session's
        length double up from the start again."""
        length = slot_length(self.clinic)
        per_session = max(1, SESSION_LENGTH // length)
        return self.start + (index % per_session) * length


class SessionBook:
    """All sessions referred to in a run, keyed by clinic, day and half-day."""

    def __init__(self, first_day: int, days: int) -> None:
        self._first_day = first_day  # epoch day number of the window's first day
        self._end_day = first_day + days
        self._sessions: dict[tuple[str, int, str], Session] = {}
        self._dates: dict[int, str] = {}

    def session(self, clinic: Clinic, day: int, half: str) -> Session:
        """The session of ``clinic`` on epoch day ``day`` (AM or PM), created on first use."""
        key = (clinic.code, day, half)
        found = self._sessions.get(key)
        if found is None:
            stamp = self._dates.get(day)
            if stamp is None:
                stamp = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y%m%d")
                self._dates[day] = stamp
            found = Session(
                id=f"S-{clinic.code}-{stamp}-{half}",
                clinic=clinic,
                start=day * DAY + HALF_STARTS[half],
                tracked=self._first_day <= day < self._end_day,
            )
            self._sessions[key] = found
        return found

    def next_session(self, clinic: Clinic, after: int) -> Session:
        """The first session of ``clinic`` starting after ``after`` (epoch s UTC)."""
        day = after // DAY
        for d in range(day, day + 15):
            for wd, half in clinic.slots:
                if wd == weekday(d * DAY):
                    s = self.session(clinic, d, half)
                    if s.start > after:
                        return s
        raise ValueError(f"clinic {clinic.code} runs no session")

    @staticmethod
    def enter(session: Session, t: int, event_id: str) -> None:
        """Ledger: the event ``event_id`` at ``t`` puts an appointment into ``session``."""
        if session.tracked:
            session.moves.append((t, event_id, 1))

    @staticmethod
    def leave(session: Session, t: int, event_id: str) -> None:
        """Ledger: the event ``event_id`` at ``t`` takes an appointment out of ``session``."""
        if session.tracked:
            session.moves.append((t, event_id, -1))

    def close(self, log: EventLog, truth: TruthBook, rng: Random, overbooked: float) -> None:
        """Give every tracked session its capacity event and its truth record; a fraction
        ``overbooked`` of them get a capacity below their peak of live bookings."""
        tracked = sorted(
            (s for s in self._sessions.values() if s.tracked and s.moves),
            key=lambda s: (s.start, s.id),
        )
        outcomes = allocate(rng, len(tracked), {"violation": overbooked}, "met")
        for session, outcome in zip(tracked, outcomes, strict=True):
            session.moves.sort()
            live = peak = 0
            for _, _, delta in session.moves:
                live += delta
                peak = max(peak, live)
            if outcome == "violation":
                capacity = max(0, peak - rng.choice((1, 1, 2)))
            else:
                capacity = max(session.clinic.capacity, peak)
            # Published a day before the first booking, and at least four weeks ahead.
            first = min(session.moves[0][0], session.start - 29 * DAY)
            published = (first // DAY - 1) * DAY + 7 * HOUR
            log.emit(
                published,
                "session.capacity",
                None,
                {"session": session.id},
                {
                    "capacity": capacity,
                    "start": format_time(session.start),
                    "clinic": session.clinic.code,
                    "specialty": session.clinic.specialty,
                    "site": session.clinic.site,
                },
            )
            if outcome == "violation":
                live = 0
                for t, _, delta in session.moves:
                    live += delta
                    if live > capacity:
                        truth.session(session.id, "violation", t, session.start)
                        break
            else:
                truth.session(session.id, "met", published, session.start)
