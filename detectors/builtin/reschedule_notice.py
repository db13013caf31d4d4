"""``reschedule-notice``: a hospital-initiated reschedule or cancellation must be followed
by a notice to the patient before it matters.

Opens on ``appointment.rescheduled`` / ``appointment.cancelled`` with
``initiated_by == "hospital"`` (and, unless the rules switch it off, with no
``initiated_by`` at all: a patient should hear of any change they did not ask for; such
opportunities carry ``initiated_by: unknown``); closes on ``patient.notified`` or an
appointment-letter ``document.sent`` for the same appointment. Due by the earlier of
``notice`` (default 48 h) after the change and the previous start.

No notice is owed to a patient who has died: a ``patient.died`` for the patient before
the deadline (also one timed before the change, or recorded later) voids the
opportunity, and so does a change whose reason the site mapping marks as the patient's
death (``attrs.deceased``), which voids the appointment's earlier changes too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from detectors.contract import ExpectationDetector, Thresholds
from detectors.errors import EventError
from detectors.events import Event, parse_time

__all__ = ["RescheduleNotice"]


class RescheduleNotice(ExpectationDetector):
    """Patient told of a hospital-initiated appointment change in time."""

    name: ClassVar[str] = "reschedule-notice"
    key_ref = "appointment"
    opens = ("appointment.rescheduled", "appointment.cancelled")
    closes = ("patient.notified", "document.sent")
    patient_voids = ("patient.died",)
    opened_words = "Appointment {appointment} was changed by the hospital"
    expected_words = "telling the patient"
    DEFAULTS: ClassVar[dict[str, float]] = {"notice": 48 * 3600.0}

    def __init__(
        self, thresholds: Thresholds | None = None, *, monitor_unknown_initiator: bool = True
    ) -> None:
        self.thresholds = thresholds or Thresholds(self.DEFAULTS)
        #: whether a change with no ``initiated_by`` opens an opportunity
        self.monitor_unknown_initiator = monitor_unknown_initiator
        #: changes seen with no ``initiated_by`` (the run summary names them)
        self.unknown_initiator = 0

    def deadline(self, event: Event) -> float | None:
        attrs = event.attrs
        who = attrs.get("initiated_by")
        if who != "hospital" and attrs.get("deceased") is not True:
            if who is not None and who != "unknown":
                return None
            self.unknown_initiator += 1
            if not self.monitor_unknown_initiator:
                return None
        due = event.time + self.thresholds.for_event(event)["notice"]
        prev = event.attrs.get("previous_start")
        if prev:
            try:
                prev_t = parse_time(prev, field_name="attrs.previous_start")
            except EventError:
                return due
            if prev_t > event.time:
                return min(due, prev_t)
        return due

    def carried_attrs(self, event: Event) -> dict[str, Any]:
        out = super().carried_attrs(event)
        if event.attrs.get("initiated_by") not in ("hospital", "patient"):
            out["initiated_by"] = "unknown"
        return out

    def void_reason(self, event: Event) -> str | None:
        if event.attrs.get("deceased") is True:
            return "the change was made because the patient died"
        return None

    def is_close(self, event: Event) -> bool:
        if event.type == "document.sent":
            return event.attrs.get("kind") == "appointment-letter"
        return True
