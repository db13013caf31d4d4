"""The expected outcome of every opportunity, written down as the generator decides.

Each scenario knows every event it emits for its own key (appointment, order,
encounter, session, deceased patient), and no other scenario emits events for that key,
so the outcome follows from the rules of ``docs/detectors.md`` applied to the scenario's
own plan. Times are epoch seconds UTC here and ISO-8601 ``+00:00`` in the records.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from detectors.builtin import (
    BUILTINS,
    ClinicLetterOverdue,
    DischargeSummaryOverdue,
    RescheduleNotice,
    ResultOverdue,
    ResultUnacknowledged,
)
from detectors.events import format_time
from detectors.records import failure_id as _hashed_id
from detectors.rules import load_settings

__all__ = [
    "ACK_ABNORMAL",
    "ACK_CRITICAL",
    "CLINIC_LETTER",
    "DISCHARGE_SUMMARY",
    "LATE_RETENTION",
    "NOTICE",
    "TURNAROUND",
    "TruthBook",
    "failure_id",
    "notice_due",
    "resolve",
]

HOUR = 3600
DAY = 86400

# Default deadlines of the built-in detectors, in whole seconds, read from the detectors
# themselves (their ``DEFAULTS``, what a rules file overrides): the bookkeeping below is
# written independently of the engine, the numbers are not written twice.
NOTICE = int(RescheduleNotice.DEFAULTS["notice"])
TURNAROUND = {k: int(v) for k, v in ResultOverdue.DEFAULTS.items()}
ACK_CRITICAL = int(ResultUnacknowledged.DEFAULTS["critical"])
ACK_ABNORMAL = int(ResultUnacknowledged.DEFAULTS["abnormal"])
DISCHARGE_SUMMARY = int(DischargeSummaryOverdue.DEFAULTS["within"])
CLINIC_LETTER = int(ClinicLetterOverdue.DEFAULTS["within"])
#: A closing event later than ``due + LATE_RETENTION`` would leave a live engine at
#: ``missed`` while the rules say ``late``; the generator never plans one. The engine's
#: default, from the built-in settings.
LATE_RETENTION = int(load_settings(None).late_retention)


def failure_id(detector: str, key: str, opening_event: str) -> str:
    """The detectors' own rule (``detectors.records.failure_id``): SHA-256 over detector,
    key and opening event id; for a detector whose key opens once
    (``opens_once_per_key``, taken from the detector) the key stands for the opening
    event."""
    return _hashed_id(detector, key, key if detector in _OPENS_ONCE else opening_event)


_OPENS_ONCE = frozenset(
    name for name, cls in BUILTINS.items() if getattr(cls, "opens_once_per_key", False)
)


def notice_due(t_a: int, previous_start: int | None) -> int:
    """Deadline of a reschedule notice: ``min(t_a + 48h, previous_start)``, or
    ``t_a + 48h`` when ``previous_start`` is missing or not after ``t_a`` (epoch s UTC)."""
    if previous_start is None or previous_start <= t_a:
        return t_a + NOTICE
    return min(t_a + NOTICE, previous_start)


def resolve(
    t_a: int, due: int, closes: Iterable[int], voids: Iterable[int] = ()
) -> tuple[str, int | None]:
    """Outcome of one expectation opened at ``t_a`` with deadline ``due``, given the times of
    every closing and voiding event of its key; returns ``(outcome, closed_at)``."""
    b = min((t for t in closes if t >= t_a), default=None)
    z = min((t for t in voids if t >= t_a), default=None)
    if z is not None and z > due:
        z = None  # a void after the deadline changes nothing
    if b is not None and (z is None or b <= z):
        if b <= due:
            return "met", None
        return "late", b
    if z is not None and z <= due:
        return "void", None
    return "missed", None


class TruthBook:
    """Collects one record per opportunity."""

    def __init__(self) -> None:
        self._records: list[dict[str, Any]] = []

    def expectation(
        self,
        detector: str,
        key: str,
        opening_event: str,
        t_a: int,
        due: int,
        closes: Iterable[int],
        voids: Iterable[int] = (),
    ) -> str:
        """Record an expectation opportunity (times in epoch s UTC); returns its outcome."""
        closes, voids = list(closes), list(voids)
        outcome, closed_at = resolve(t_a, due, closes, voids)
        if closed_at is not None and closed_at > due + LATE_RETENTION:
            raise AssertionError(f"{detector} {key}: a late closure beyond the late retention")
        self._add(detector, key, opening_event, outcome, t_a, due, closed_at)
        return outcome

    def session(self, session: str, outcome: str, opened_at: int, session_start: int) -> None:
        """Record a ``clinic-overbooked`` opportunity: ``violation`` at the time it first
        went over, or ``met`` at the time of its capacity event; due at its start."""
        self._add("clinic-overbooked", session, session, outcome, opened_at, session_start, None)

    def contact_after_death(self, patient: str, contact_event: str, t: int) -> None:
        """Record one contact with a patient after their death (a violation, no deadline)."""
        self._add("contact-after-death", patient, contact_event, "violation", t, None, None)

    def _add(
        self,
        detector: str,
        key: str,
        opening_event: str,
        outcome: str,
        opened_at: int,
        due_at: int | None,
        closed_at: int | None,
    ) -> None:
        self._records.append(
            {
                "detector": detector,
                "key": key,
                "opening_event": opening_event,
                "failure_id": failure_id(detector, key, opening_event),
                "outcome": outcome,
                "opened_at": format_time(opened_at),
                "due_at": None if due_at is None else format_time(due_at),
                "closed_at": None if closed_at is None else format_time(closed_at),
            }
        )

    def records(self) -> list[dict[str, Any]]:
        """All records, sorted by ``(detector, failure_id)``."""
        return sorted(self._records, key=lambda r: (r["detector"], r["failure_id"]))
