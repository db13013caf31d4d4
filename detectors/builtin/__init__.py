"""The built-in detectors, by name. Each lives in its own small module."""

from __future__ import annotations

from detectors.builtin.clinic_overbooked import ClinicOverbooked
from detectors.builtin.contact_after_death import ContactAfterDeath
from detectors.builtin.letters import ClinicLetterOverdue, DischargeSummaryOverdue
from detectors.builtin.reschedule_notice import RescheduleNotice
from detectors.builtin.result_overdue import ResultOverdue
from detectors.builtin.result_unacknowledged import ResultUnacknowledged

__all__ = [
    "BUILTINS",
    "ClinicLetterOverdue",
    "ClinicOverbooked",
    "ContactAfterDeath",
    "DischargeSummaryOverdue",
    "RescheduleNotice",
    "ResultOverdue",
    "ResultUnacknowledged",
]

#: Every built-in detector class by its name, in the order they are documented.
BUILTINS: dict[str, type] = {
    cls.name: cls
    for cls in (
        RescheduleNotice,
        ResultOverdue,
        ResultUnacknowledged,
        DischargeSummaryOverdue,
        ClinicLetterOverdue,
        ClinicOverbooked,
        ContactAfterDeath,
    )
}
