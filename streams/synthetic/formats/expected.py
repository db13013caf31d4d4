"""The truth as a reader of one output format will find it.

The generator's truth is written for the canonical events. An HL7 v2 or FHIR reader sees
the same care, with two differences that follow from the formats, not from the engine:

- **Detectors a format cannot feed.** HL7 v2 has no message for ``session.capacity`` or
  ``result.acknowledged`` that the adapters read, so ``clinic-overbooked`` has no
  opportunity and ``result-unacknowledged`` could only ever say ``missed``; FHIR has no
  resource for ``session.capacity`` the adapters read (and its Appointments name no
  session), so ``clinic-overbooked`` has no opportunity. Their records are left out.
- **A reschedule always says where the appointment was.** The adapters remember each
  appointment's start (a FHIR reschedule *is* a new version with another start; an
  SIU^S13 is read against the start of the previous message), so the edge case of a
  hospital reschedule *without* ``previous_start`` reaches the detectors with the old
  start filled in. Its notice deadline is then ``min(t_a + 48h, previous start)`` instead
  of ``t_a + 48h``, and its outcome is re-decided with the same rule and notices.

Every record keeps its canonical key, opening event and ``failure_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detectors.events import format_time
from streams.synthetic.formats.delivery import OUTPUT_FORMATS
from streams.synthetic.formats.wire_time import epoch_of
from streams.synthetic.generator import Generated
from streams.synthetic.log import Record
from streams.synthetic.truth import notice_due, resolve

__all__ = ["DETECTORS", "DETECTORS_FED", "format_truth", "reschedules_without_previous_start"]

#: The built-in detectors the generator writes truth for.
DETECTORS: frozenset[str] = frozenset(
    {
        "reschedule-notice",
        "result-overdue",
        "result-unacknowledged",
        "discharge-summary-overdue",
        "clinic-letter-overdue",
        "clinic-overbooked",
        "contact-after-death",
    }
)

#: The detectors each output format can feed.
DETECTORS_FED: dict[str, frozenset[str]] = {
    "jsonl": DETECTORS,
    "hl7": DETECTORS - {"clinic-overbooked", "result-unacknowledged"},
    "fhir": DETECTORS - {"clinic-overbooked"},
}


def format_truth(generated: Generated, fmt: str) -> list[dict[str, Any]]:
    """The truth records a reader of ``fmt`` output will find (see the module docstring),
    in the order of ``generated.truth``. ``jsonl`` gives the truth unchanged."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}")
    if fmt == "jsonl":
        return list(generated.truth)
    fed = DETECTORS_FED[fmt]
    refilled = reschedules_without_previous_start(generated.records)
    notices = _notice_times(generated.records, {a for a, _ in refilled.values()})
    out: list[dict[str, Any]] = []
    for row in generated.truth:
        if row["detector"] not in fed:
            continue
        if row["detector"] == "reschedule-notice" and row["opening_event"] in refilled:
            appointment, previous = refilled[row["opening_event"]]
            row = _redecided(row, previous, notices.get(appointment, []))
        out.append(row)
    return out


def reschedules_without_previous_start(records: Sequence[Record]) -> dict[str, tuple[str, int]]:
    """``{event id: (appointment, previous start)}`` for every ``appointment.rescheduled``
    written without ``previous_start``, with the start (epoch s UTC) its appointment had
    just before it: what an HL7 or FHIR reader fills in."""
    starts: dict[str, int] = {}
    found: dict[str, tuple[str, int]] = {}
    for _, eid, event in records:
        kind = event["type"]
        if kind not in ("appointment.booked", "appointment.rescheduled"):
            continue
        appointment = event["refs"]["appointment"]
        attrs = event["attrs"]
        remembered = starts.get(appointment)
        if (
            kind == "appointment.rescheduled"
            and "previous_start" not in attrs
            and remembered is not None
        ):
            found[eid] = (appointment, remembered)
        starts[appointment] = epoch_of(attrs["start"])
    return found


def _notice_times(records: Sequence[Record], appointments: set[str]) -> dict[str, list[int]]:
    """Times (epoch s UTC) of every event that counts as a notice for each appointment."""
    found: dict[str, list[int]] = {}
    if not appointments:
        return found
    for t, _, event in records:
        appointment = event["refs"].get("appointment")
        if appointment not in appointments:
            continue
        kind = event["type"]
        if kind == "patient.notified" or (
            kind == "document.sent" and event["attrs"].get("kind") == "appointment-letter"
        ):
            found.setdefault(appointment, []).append(t)
    return found


def _redecided(row: dict[str, Any], previous: int, notices: list[int]) -> dict[str, Any]:
    t_a = epoch_of(row["opened_at"])
    due = notice_due(t_a, previous)
    outcome, closed_at = resolve(t_a, due, notices)
    return {
        **row,
        "outcome": outcome,
        "due_at": format_time(due),
        "closed_at": None if closed_at is None else format_time(closed_at),
    }
