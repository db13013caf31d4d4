"""A small, independent reading of docs/detectors.md over a finished list of events.

Test helper only: it shares no code with the generator, so agreement between the two is
evidence that the generator's truth follows the spec. Times are epoch seconds (UTC).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from detectors.events import Event, event_from_dict, format_time, parse_time

H = 3600.0
D = 86400.0


#: Keys that open once (docs/detectors.md): the key stands for the opening event.
_ONCE = ("discharge-summary-overdue", "clinic-letter-overdue")


def _fid(detector: str, key: str, opening: str) -> str:
    if detector in _ONCE:
        opening = key
    return hashlib.sha256(f"{detector}\x1f{key}\x1f{opening}".encode()).hexdigest()[:16]


def _record(
    detector: str,
    key: str,
    opening: str,
    outcome: str,
    opened: float,
    due: float | None,
    closed: float | None,
) -> dict[str, Any]:
    return {
        "detector": detector,
        "key": key,
        "opening_event": opening,
        "failure_id": _fid(detector, key, opening),
        "outcome": outcome,
        "opened_at": format_time(opened),
        "due_at": None if due is None else format_time(due),
        "closed_at": None if closed is None else format_time(closed),
    }


def _notice_due(e: Event) -> float:
    prev = e.attrs.get("previous_start")
    if prev is None:
        return e.time + 48 * H
    p = parse_time(prev)
    return e.time + 48 * H if p <= e.time else min(e.time + 48 * H, p)


def _ack_due(e: Event) -> float | None:
    if e.attrs.get("critical") is True:
        return e.time + 1 * H
    if e.attrs.get("abnormal") is True:
        return e.time + 7 * D
    return None


_TURNAROUND = {"stat": 1 * H, "urgent": 4 * H, "routine": 72 * H}

Opens = Callable[[Event], float | None]  # due, or None when the event opens nothing
Match = Callable[[Event], bool]

EXPECTATIONS: list[tuple[str, str, Opens, Match, Match]] = [
    (
        "reschedule-notice",
        "appointment",
        lambda e: (
            _notice_due(e)
            if e.type in ("appointment.rescheduled", "appointment.cancelled")
            and e.attrs.get("initiated_by") == "hospital"
            else None
        ),
        lambda e: (
            e.type == "patient.notified"
            or (e.type == "document.sent" and e.attrs.get("kind") == "appointment-letter")
        ),
        lambda e: False,
    ),
    (
        "result-overdue",
        "order",
        lambda e: (
            e.time + _TURNAROUND.get(e.attrs.get("priority", ""), 72 * H)
            if e.type == "order.placed"
            else None
        ),
        lambda e: e.type == "result.reported",
        lambda e: e.type == "order.cancelled",
    ),
    (
        "result-unacknowledged",
        "order",
        lambda e: _ack_due(e) if e.type == "result.reported" else None,
        lambda e: e.type == "result.acknowledged",
        lambda e: False,
    ),
    (
        "discharge-summary-overdue",
        "encounter",
        lambda e: e.time + 24 * H if e.type == "encounter.discharged" else None,
        lambda e: e.type == "document.sent" and e.attrs.get("kind") == "discharge-summary",
        lambda e: False,
    ),
    (
        "clinic-letter-overdue",
        "appointment",
        lambda e: e.time + 7 * D if e.type == "appointment.attended" else None,
        lambda e: e.type == "document.sent" and e.attrs.get("kind") == "clinic-letter",
        lambda e: False,
    ),
]


#: detectors whose key opens one opportunity however many opening events it has
OPEN_ONCE = {"discharge-summary-overdue", "clinic-letter-overdue"}


def reference_outcomes(raw: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every opportunity's final outcome, computed from the events alone."""
    unique: dict[str, Event] = {}
    for obj in raw:
        e = event_from_dict(obj)
        unique.setdefault(e.id, e)
    events = sorted(unique.values(), key=lambda e: (e.time, e.id))
    out: list[dict[str, Any]] = []
    died: dict[str, float] = {}
    for e in events:
        if e.type == "patient.died" and e.patient is not None:
            died.setdefault(e.patient, e.time)  # events are in time order: the earliest
    for detector, ref, opens, closes, voids in EXPECTATIONS:
        b_times: dict[str, list[float]] = defaultdict(list)
        z_times: dict[str, list[float]] = defaultdict(list)
        for e in events:
            key = e.refs.get(ref)
            if key is None:
                continue
            if closes(e):
                b_times[key].append(e.time)
            if voids(e):
                z_times[key].append(e.time)
        opened: set[str] = set()
        for e in events:
            key = e.refs.get(ref)
            if key is None:
                continue
            due = opens(e)
            if due is None:
                continue
            if detector in OPEN_ONCE:
                if key in opened:
                    continue  # the same discharge or visit again: its first event counts
                opened.add(key)
            b = min((t for t in b_times[key] if t >= e.time), default=None)
            z = min((t for t in z_times[key] if t >= e.time), default=None)
            if detector == "reschedule-notice" and e.patient in died:
                # no notice is owed to a patient who has died: void from the death (or
                # from the change, when the death came first)
                at = max(died[e.patient], e.time)
                z = at if z is None else min(z, at)
            if z is not None and z > due:
                z = None  # a void after the deadline changes nothing
            if b is not None and (z is None or b <= z):
                outcome, closed = ("met", None) if b <= due else ("late", b)
            elif z is not None and z <= due:
                outcome, closed = "void", None
            else:
                outcome, closed = "missed", None
            out.append(_record(detector, key, e.id, outcome, e.time, due, closed))
    out.extend(_overbooked(events))
    out.extend(_contact_after_death(events))
    return sorted(out, key=lambda r: (r["detector"], r["failure_id"]))


def _overbooked(events: list[Event]) -> list[dict[str, Any]]:
    capacity: dict[str, int] = {}
    first_capacity: dict[str, float] = {}
    start: dict[str, float] = {}
    live: dict[str, int] = defaultdict(int)
    where: dict[str, str] = {}
    over: dict[str, float] = {}
    for e in events:
        appt = e.refs.get("appointment")
        session = e.refs.get("session")
        if e.type == "session.capacity" and session:
            capacity[session] = int(e.attrs["capacity"])
            first_capacity.setdefault(session, e.time)
            start[session] = parse_time(e.attrs["start"])
            touched = session
        elif e.type == "appointment.booked" and appt and session:
            where[appt] = session
            live[session] += 1
            touched = session
        elif e.type == "appointment.rescheduled" and appt:
            old = where.pop(appt, None)
            if old is not None:
                live[old] -= 1
            if session:
                where[appt] = session
                live[session] += 1
            touched = session or ""
        elif e.type == "appointment.cancelled" and appt:
            old = where.pop(appt, None)
            if old is not None:
                live[old] -= 1
            continue
        else:
            continue
        if touched in capacity and touched not in over and live[touched] > capacity[touched]:
            over[touched] = e.time
    out = []
    for session in capacity:
        if session in over:
            rec = _record(
                "clinic-overbooked",
                session,
                session,
                "violation",
                over[session],
                start[session],
                None,
            )
        else:
            rec = _record(
                "clinic-overbooked",
                session,
                session,
                "met",
                first_capacity[session],
                start[session],
                None,
            )
        out.append(rec)
    return out


def _contact_after_death(events: list[Event]) -> list[dict[str, Any]]:
    died: dict[str, float] = {}
    for e in events:
        if e.type == "patient.died" and e.patient is not None:
            died[e.patient] = min(died.get(e.patient, e.time), e.time)
    out = []
    for e in events:
        if e.type not in ("appointment.booked", "patient.notified", "document.sent"):
            continue
        if e.type == "document.sent" and _recipient(e) != "patient":
            continue  # a discharge summary to the GP after a death is required, not contact
        if e.patient in died and e.time > died[e.patient]:
            out.append(
                _record("contact-after-death", e.patient, e.id, "violation", e.time, None, None)
            )
    return out


def _recipient(e: Event) -> str:
    """Who a document is for (docs/events.md): ``attrs.recipient``, else by its kind:
    summaries and clinic letters go to the GP, anything else to the patient."""
    given = e.attrs.get("recipient")
    if isinstance(given, str):
        return given
    return "gp" if e.attrs.get("kind") in ("discharge-summary", "clinic-letter") else "patient"
