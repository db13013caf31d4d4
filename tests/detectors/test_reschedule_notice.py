from __future__ import annotations

from detectors.testing import ev, run_events
from tests.detectors.helpers import FAR, at, epoch

ONLY = "detectors: {result-overdue: off, result-unacknowledged: off, clinic-overbooked: off}\n"


def moved(
    hours: float = 0.0,
    *,
    by: str = "hospital",
    previous_start: str | None = None,
    kind: str = "appointment.rescheduled",
    appt: str = "A1",
) -> object:
    attrs = {"initiated_by": by, "start": at(days=20)}
    if previous_start is not None:
        attrs["previous_start"] = previous_start
    return ev(kind, at(hours), refs={"appointment": appt}, attrs=attrs)


def test_patient_initiated_changes_need_no_notice() -> None:
    out = run_events([moved(by="patient")], rules=ONLY, as_of=FAR)
    assert out.by_detector("reschedule-notice") == []


def test_deadline_is_48h_after_the_change_when_the_old_date_is_far() -> None:
    out = run_events([moved(previous_start=at(days=10))], rules=ONLY, as_of=FAR)
    [o] = out.by_detector("reschedule-notice")
    assert o.due_at == epoch(48)


def test_deadline_is_the_previous_start_when_that_is_sooner() -> None:
    # Moved on Monday morning, the old appointment was Tuesday 08:00: the notice must
    # reach the patient before they travel for the old date.
    out = run_events(
        [moved(previous_start=at(23)), ev("patient.notified", at(30), refs={"appointment": "A1"})],
        rules=ONLY,
        as_of=FAR,
    )
    [o] = out.by_detector("reschedule-notice")
    assert (o.due_at, o.outcome) == (epoch(23), "late")


def test_previous_start_in_the_past_falls_back_to_48h() -> None:
    out = run_events([moved(previous_start=at(-5))], rules=ONLY, as_of=FAR)
    assert out.by_detector("reschedule-notice")[0].due_at == epoch(48)


def test_hospital_cancellation_needs_notice_too() -> None:
    out = run_events(
        [moved(kind="appointment.cancelled", previous_start=at(days=5))], rules=ONLY, as_of=FAR
    )
    assert out.outcome_of("reschedule-notice", "A1") == "missed"


def test_an_appointment_letter_counts_but_a_clinic_letter_does_not() -> None:
    letter = ev(
        "document.sent", at(3), refs={"appointment": "A1"}, attrs={"kind": "appointment-letter"}
    )
    clinic = ev("document.sent", at(3), refs={"appointment": "A1"}, attrs={"kind": "clinic-letter"})
    assert (
        run_events([moved(), letter], rules=ONLY, as_of=FAR).outcome_of("reschedule-notice", "A1")
        == "met"
    )
    assert (
        run_events([moved(), clinic], rules=ONLY, as_of=FAR).outcome_of("reschedule-notice", "A1")
        == "missed"
    )


def test_one_notice_covers_two_changes_before_it() -> None:
    notice = ev("patient.notified", at(5), refs={"appointment": "A1"}, attrs={"channel": "sms"})
    out = run_events([moved(0), moved(2), notice], rules=ONLY, as_of=FAR)
    assert [o.outcome for o in out.by_detector("reschedule-notice")] == ["met", "met"]


def test_a_notice_before_a_second_change_does_not_cover_it() -> None:
    notice = ev("patient.notified", at(1), refs={"appointment": "A1"})
    out = run_events([moved(0), notice, moved(2)], rules=ONLY, as_of=FAR)
    assert [o.outcome for o in out.by_detector("reschedule-notice")] == ["met", "missed"]


def test_threshold_override_per_site() -> None:
    doc = """
detectors:
  result-overdue: off
  reschedule-notice:
    notice: 72h
    overrides:
      - when: {site: north}
        notice: 24h
"""
    north = ev(
        "appointment.rescheduled",
        at(0),
        refs={"appointment": "A1"},
        attrs={"initiated_by": "hospital", "site": "north"},
    )
    south = ev(
        "appointment.rescheduled",
        at(0),
        refs={"appointment": "A2"},
        attrs={"initiated_by": "hospital", "site": "south"},
    )
    out = run_events([north, south], rules=doc, as_of=FAR)
    due = {o.key: o.due_at for o in out.by_detector("reschedule-notice")}
    assert due == {"A1": epoch(24), "A2": epoch(72)}
