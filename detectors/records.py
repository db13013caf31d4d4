"""Outcome and failure records: what the engine says about each opportunity.

An ``Outcome`` is the ledger entry of one opportunity. The engine may emit the same
opportunity more than once as it learns more (``missed`` then ``late``); consumers keep
the latest record per ``failure_id``. The failure view of a record is the subset an
operations team acts on (status ``late``, ``missed``, ``violation`` or ``withdrawn``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from detectors.events import format_time

__all__ = [
    "FAILURE_OUTCOMES",
    "OUTCOMES",
    "Outcome",
    "failure_id",
]

#: Every outcome an opportunity can end in.
OUTCOMES: tuple[str, ...] = ("met", "late", "missed", "void", "violation")
#: The outcomes that are failures.
FAILURE_OUTCOMES: frozenset[str] = frozenset({"late", "missed", "violation"})


def failure_id(detector: str, key: str, opening_event_id: str) -> str:
    """Stable id of an opportunity: the same across replays, restarts and machines."""
    raw = f"{detector}\x1f{key}\x1f{opening_event_id}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _t(value: float | None) -> str | None:
    return None if value is None else format_time(value)


#: Field names in constructor order (what ``repr`` shows).
_FIELDS = (
    "failure_id",
    "detector",
    "outcome",
    "key",
    "patient",
    "refs",
    "opened_at",
    "due_at",
    "closed_at",
    "detected_at",
    "evidence",
    "attrs",
    "summary",
    "amended_from",
    "evidence_events",
)

_dt = datetime.fromtimestamp
_dumps = orjson.dumps


def _utc(t: float) -> datetime:
    return _dt(t, UTC)


class Outcome:
    """The outcome of one opportunity. All times are epoch seconds, UTC.

    ``detected_at`` is the watermark when the outcome was decided (for failures: when the
    failure was noticed). ``amended_from`` is the previous outcome when this record
    corrects an earlier one (``missed`` -> ``late``, or a withdrawn ``missed``).
    ``evidence`` holds the ids of the events behind the outcome and ``evidence_events``
    their ``(type, time)``, in the same order (empty when not known: a record of an
    older Carewatch, or a detector that does not say); the failure record writes each
    evidence event out as ``{"id", "type", "time"}`` (the outcome ledger, many times
    larger and read for rates, keeps the ids only).

    Written out rather than a dataclass for the compiled build's sake (see ``Event``):
    the fields are named in ``_FIELDS`` (slots, equality, ``repr``, pickling) and set in
    ``__init__``; compared and shown field by field, like a dataclass.
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        failure_id: str,
        detector: str,
        outcome: str,
        key: str,
        patient: str | None,
        refs: dict[str, str],
        opened_at: float,
        due_at: float | None,
        closed_at: float | None,
        detected_at: float,
        evidence: list[str],
        attrs: dict[str, Any],
        summary: str,
        amended_from: str | None = None,
        evidence_events: list[tuple[str, float]] | None = None,
    ) -> None:
        self.failure_id = failure_id
        self.detector = detector
        self.outcome = outcome
        self.key = key
        self.patient = patient
        self.refs = refs
        self.opened_at = opened_at
        self.due_at = due_at
        self.closed_at = closed_at
        self.detected_at = detected_at
        self.evidence = evidence
        self.attrs = attrs
        self.summary = summary
        self.amended_from = amended_from
        self.evidence_events = [] if evidence_events is None else evidence_events

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __reduce__(self) -> tuple[type[Outcome], tuple[Any, ...]]:
        # pickle and copy rebuild it through __init__: the compiled class has no other way
        return (Outcome, self._fields())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outcome):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable fields: unhashable, as a dataclass

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}" for name, value in zip(_FIELDS, self._fields(), strict=True)
        )
        return f"Outcome({shown})"

    @property
    def is_failure(self) -> bool:
        """True when this opportunity failed (late, missed or violation)."""
        return self.outcome in FAILURE_OUTCOMES

    @property
    def failure_status(self) -> str | None:
        """Status for the failures feed: the outcome if it is a failure, ``withdrawn`` when
        an earlier failure turned out not to be one, else ``None``."""
        if self.outcome in FAILURE_OUTCOMES:
            return self.outcome
        if self.amended_from in FAILURE_OUTCOMES:
            return "withdrawn"
        return None

    @property
    def overdue_seconds(self) -> float | None:
        """How far past the deadline the failure was when decided (seconds), if it has one."""
        if self.due_at is None:
            return None
        end = self.closed_at if self.closed_at is not None else self.detected_at
        return max(0.0, end - self.due_at)

    def _evidence_out(self, time: Any) -> list[dict[str, Any]]:
        """Each evidence event as ``{"id", "type", "time"}`` (type and time ``None`` when
        not known); ``time`` formats an epoch time."""
        known = self.evidence_events
        if len(known) != len(self.evidence):
            return [{"id": i, "type": None, "time": None} for i in self.evidence]
        return [
            {"id": i, "type": ty or None, "time": time(t)}
            for i, (ty, t) in zip(self.evidence, known, strict=True)
        ]

    def _common(self) -> dict[str, Any]:
        return {
            "failure_id": self.failure_id,
            "detector": self.detector,
            "patient": self.patient,
            "refs": self.refs,
            "opened_at": _t(self.opened_at),
            "due_at": _t(self.due_at),
            "closed_at": _t(self.closed_at),
            "detected_at": _t(self.detected_at),
            "evidence": self.evidence,
            "attrs": self.attrs,
            "summary": self.summary,
        }

    def _json_common(self) -> dict[str, Any]:
        # datetimes, not strings: orjson writes them as ISO-8601 (+00:00) in C, several
        # times faster than formatting each in Python (this is the per-record hot path)
        due, closed = self.due_at, self.closed_at
        return {
            "failure_id": self.failure_id,
            "detector": self.detector,
            "patient": self.patient,
            "refs": self.refs,
            "opened_at": _dt(self.opened_at, UTC),
            "due_at": None if due is None else _dt(due, UTC),
            "closed_at": None if closed is None else _dt(closed, UTC),
            "detected_at": _dt(self.detected_at, UTC),
            "evidence": self.evidence,
            "attrs": self.attrs,
            "summary": self.summary,
        }

    def outcome_json(self) -> bytes:
        """The outcome record as one line of JSON (no newline); same content as
        ``to_outcome_dict``."""
        out = self._json_common()
        out["outcome"] = self.outcome
        out["key"] = self.key
        if self.amended_from is not None:
            out["amended_from"] = self.amended_from
        return _dumps(out)

    def failure_json(self) -> bytes:
        """The failure record as one line of JSON (no newline)."""
        out = self._json_common()
        out["status"] = self.failure_status
        out["evidence_events"] = self._evidence_out(_utc)
        return _dumps(out)

    def to_outcome_dict(self) -> dict[str, Any]:
        """The outcome record (QI ledger form)."""
        out = self._common()
        out["outcome"] = self.outcome
        out["key"] = self.key
        if self.amended_from is not None:
            out["amended_from"] = self.amended_from
        return out

    def to_failure_dict(self) -> dict[str, Any]:
        """The failure record (operations form). Only meaningful when ``failure_status``."""
        out = self._common()
        out["status"] = self.failure_status
        out["evidence_events"] = self._evidence_out(_t)
        return out
