from __future__ import annotations

from detectors.testing import ev, run_events
from tests.detectors.helpers import FAR, at, epoch


def died(hours: float, patient: str = "P1") -> object:
    return ev("patient.died", at(hours), patient=patient)


def booked(hours: float, appt: str, patient: str = "P1", session: str | None = None) -> object:
    refs = {"appointment": appt}
    if session:
        refs["session"] = session
    return ev(
        "appointment.booked", at(hours), patient=patient, refs=refs, attrs={"start": at(days=3)}
    )


def test_contact_after_death_is_a_violation() -> None:
    death = died(0)
    after = booked(2, "A1")
    letter = ev(
        "document.sent",
        at(5),
        refs={"appointment": "A9"},
        attrs={"kind": "clinic-letter", "recipient": "patient"},
    )
    out = run_events([booked(-1, "A0"), death, after, letter], as_of=FAR)
    found = out.by_detector("contact-after-death")
    assert [(o.outcome, o.evidence) for o in found] == [
        ("violation", [death.id, after.id]),
        ("violation", [death.id, letter.id]),
    ]
    assert [o.attrs["contact"] for o in found] == ["appointment.booked", "document.sent"]
    assert all(o.failure_status == "violation" and o.key == "P1" for o in found)


def test_contact_before_death_is_fine_and_other_patients_untouched() -> None:
    out = run_events([booked(-1, "A0"), died(0), booked(1, "A1", patient="P2")], as_of=FAR)
    assert out.by_detector("contact-after-death") == []


def test_death_message_arriving_after_the_contact_within_lateness() -> None:
    out = run_events([booked(0.05, "A1"), died(0)], as_of=FAR)
    assert len(out.by_detector("contact-after-death")) == 1


def test_contact_judged_once_the_watermark_passes_it_whatever_arrived_before() -> None:
    # A contact that arrives behind a later one (within the lateness) must not wait for
    # it: at the end of the input the watermark (last time - 10 min) has passed the
    # earlier contact but not the later one, so the earlier is judged and the later open.
    earlier = booked(4 + 50 / 60, "A1", patient="P2")  # 13:50, the watermark at the end
    later = booked(4 + 55 / 60, "A2")  # 13:55, arrives first
    last = ev("appointment.attended", at(5), patient="P1", refs={"appointment": "A0"})
    out = run_events([died(0, patient="P2"), later, earlier, last])
    found = out.by_detector("contact-after-death")
    assert [o.evidence[1] for o in found] == [earlier.id]


def test_contact_after_death_reported_once_despite_duplicates() -> None:
    b = booked(2, "A1")
    out = run_events([died(0), b, b, died(0.5)], as_of=FAR)
    assert len(out.emitted) == len({o.failure_id for o in out.emitted})
    assert len(out.by_detector("contact-after-death")) == 1


def cap(hours: float, session: str, capacity: int, start_h: float = 48) -> object:
    return ev(
        "session.capacity",
        at(hours),
        patient=None,
        refs={"session": session},
        attrs={"capacity": capacity, "start": at(start_h), "clinic": "CARD-1", "site": "north"},
    )


def test_session_over_capacity_is_one_violation() -> None:
    events = [cap(0, "S1", 2)] + [booked(1 + i, f"A{i}", session="S1") for i in range(4)]
    out = run_events(events, as_of=FAR)
    [o] = out.by_detector("clinic-overbooked")
    assert o.outcome == "violation"
    assert (o.attrs["capacity"], o.attrs["booked"]) == (2, 3)
    assert o.opened_at == epoch(3)
    assert o.due_at == epoch(48)


def test_cancellations_and_moves_out_free_places() -> None:
    events = [
        cap(0, "S1", 2),
        booked(1, "A1", session="S1"),
        booked(2, "A2", session="S1"),
        ev("appointment.cancelled", at(3), refs={"appointment": "A1"}),
        ev("appointment.rescheduled", at(3.5), refs={"appointment": "A2", "session": "S2"}),
        booked(4, "A3", session="S1"),
        booked(5, "A4", session="S1"),
    ]
    out = run_events(events, as_of=FAR)
    [o] = out.by_detector("clinic-overbooked")
    assert o.outcome == "met"
    assert o.detected_at >= epoch(48)


def test_session_undecided_before_its_start() -> None:
    out = run_events([cap(0, "S1", 2), booked(1, "A1", session="S1")])
    assert out.outcome_of("clinic-overbooked", "S1") == "open"


def test_overbooking_counted_in_event_time_not_arrival_order() -> None:
    # A cancellation that happened before the third booking arrives after it: in event
    # time the session never went over.
    events = [
        cap(0, "S1", 2),
        booked(1, "A1", session="S1"),
        booked(2, "A2", session="S1"),
        booked(2.1, "A3", session="S1"),
        ev("appointment.cancelled", at(2.05), refs={"appointment": "A1"}),
    ]
    assert run_events(events, as_of=FAR).outcome_of("clinic-overbooked", "S1") == "met"
