"""Letters that must follow care: ``discharge-summary-overdue`` and ``clinic-letter-overdue``.

Both are "a document of a given kind must be sent for this encounter/appointment within
T" and differ only in words and defaults, so they share one class.
"""

from __future__ import annotations

from typing import ClassVar

from detectors.contract import ExpectationDetector, Thresholds
from detectors.events import Event

__all__ = ["ClinicLetterOverdue", "DischargeSummaryOverdue"]


class _DocumentAfter(ExpectationDetector):
    closes = ("document.sent",)
    # an encounter is discharged once, an attendance happens once: a repeated opening
    # message (a re-sent A03 under a new control id) corrects the first
    opens_once_per_key = True
    kind: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, float]] = {}

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds(self.DEFAULTS)

    def deadline(self, event: Event) -> float | None:
        return event.time + self.thresholds.for_event(event)["within"]

    def is_close(self, event: Event) -> bool:
        return event.attrs.get("kind") == self.kind


class DischargeSummaryOverdue(_DocumentAfter):
    """The GP gets a discharge summary within 24 h of discharge (NHS Standard Contract)."""

    name: ClassVar[str] = "discharge-summary-overdue"
    key_ref = "encounter"
    opens = ("encounter.discharged",)
    kind = "discharge-summary"
    opened_words = "Encounter {encounter} ended in discharge"
    expected_words = "the discharge summary to the GP"
    DEFAULTS: ClassVar[dict[str, float]] = {"within": 24 * 3600.0}


class ClinicLetterOverdue(_DocumentAfter):
    """A clinic letter follows an outpatient attendance within 7 days."""

    name: ClassVar[str] = "clinic-letter-overdue"
    key_ref = "appointment"
    opens = ("appointment.attended",)
    kind = "clinic-letter"
    opened_words = "The patient attended appointment {appointment}"
    expected_words = "the clinic letter"
    DEFAULTS: ClassVar[dict[str, float]] = {"within": 7 * 86400.0}
