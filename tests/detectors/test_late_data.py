"""Late, re-sent and after-the-fact data never turn a right decision wrong.

Each reproduction of the late-data issue, and the class it stands for, as a test: the
final ledger (latest record per ``failure_id``) of an out-of-order delivery equals the
ledger of the same events delivered once in event-time order, as long as nothing
arrives more than the correction horizon behind the watermark.
"""

from __future__ import annotations

from typing import Any

import orjson

from detectors.engine import BEYOND_HORIZON, ID_CONFLICT, Engine
from detectors.events import Event, event_from_dict
from detectors.records import Outcome
from detectors.rules import parse_settings
from detectors.testing import run_events

AS_OF = "2026-03-20T00:00:00Z"


def events(*lines: str) -> list[Event]:
    return [event_from_dict(orjson.loads(line)) for line in lines]


def final(run: Any, detector: str) -> list[tuple[str, str]]:
    return sorted((o.key, o.outcome) for o in run.latest.values() if o.detector == detector)


def in_time_order(evs: list[Event]) -> list[Event]:
    once = {e.id: e for e in evs}
    return sorted(once.values(), key=lambda e: (e.time, e.id))


def test_a_death_recorded_after_the_contact_still_gives_the_violation() -> None:
    evs = events(
        '{"id":"l1","type":"document.sent","time":"2026-03-02T10:00:00Z","patient":"P1",'
        '"refs":{"appointment":"A1"},"attrs":{"kind":"appointment-letter"}}',
        '{"id":"f1","type":"appointment.missed","time":"2026-03-02T10:15:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"x1","type":"patient.died","time":"2026-03-02T09:00:00Z","patient":"P1"}',
    )
    run = run_events(evs, as_of=AS_OF)
    assert final(run, "contact-after-death") == [("P1", "violation")]
    assert final(run_events(in_time_order(evs), as_of=AS_OF), "contact-after-death") == [
        ("P1", "violation")
    ]


def test_a_death_recorded_weeks_later_within_the_horizon_still_counts() -> None:
    evs = events(
        '{"id":"b1","type":"appointment.booked","time":"2026-03-02T10:00:00Z","patient":"P1",'
        '"refs":{"appointment":"A1"}}',
        '{"id":"f1","type":"appointment.missed","time":"2026-03-25T10:15:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"x1","type":"patient.died","time":"2026-03-01T09:00:00Z","patient":"P1"}',
    )
    run = run_events(evs, as_of="2026-03-26T00:00:00Z")
    assert final(run, "contact-after-death") == [("P1", "violation")]


def test_a_discharge_summary_to_the_gp_after_an_inpatient_death_is_not_contact() -> None:
    evs = events(
        '{"id":"x1","type":"patient.died","time":"2026-03-02T09:00:00Z","patient":"P1"}',
        '{"id":"dc","type":"encounter.discharged","time":"2026-03-02T09:30:00Z","patient":"P1",'
        '"refs":{"encounter":"E1"}}',
        '{"id":"ds","type":"document.sent","time":"2026-03-02T12:00:00Z","patient":"P1",'
        '"refs":{"encounter":"E1"},"attrs":{"kind":"discharge-summary"}}',
        '{"id":"l1","type":"document.sent","time":"2026-03-02T13:00:00Z","patient":"P1",'
        '"refs":{"appointment":"A1"},"attrs":{"kind":"clinic-letter","recipient":"patient"}}',
    )
    run = run_events(evs, as_of=AS_OF)
    found = [o.evidence for o in run.latest.values() if o.detector == "contact-after-death"]
    assert found == [["x1", "l1"]]  # the letter to the patient, not the summary to the GP
    assert final(run, "discharge-summary-overdue") == [("E1", "met")]


def test_a_close_long_before_its_opening_event_arrives_still_counts() -> None:
    evs = events(
        '{"id":"ds1","type":"document.sent","time":"2026-03-02T12:00:00Z","patient":"P1",'
        '"refs":{"encounter":"E1"},"attrs":{"kind":"discharge-summary"}}',
        '{"id":"f1","type":"appointment.missed","time":"2026-03-02T12:11:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"dc1","type":"encounter.discharged","time":"2026-03-02T10:00:00Z",'
        '"patient":"P1","refs":{"encounter":"E1"}}',
    )
    assert final(run_events(evs, as_of=AS_OF), "discharge-summary-overdue") == [("E1", "met")]


def test_a_re_delivery_after_the_dedupe_window_changes_nothing() -> None:
    evs = events(
        '{"id":"o1","type":"order.placed","time":"2026-03-02T09:00:00Z","patient":"P1",'
        '"refs":{"order":"O1"},"attrs":{"priority":"stat"}}',
        '{"id":"r1","type":"result.reported","time":"2026-03-02T09:30:00Z","patient":"P1",'
        '"refs":{"order":"O1"}}',
        '{"id":"f1","type":"appointment.missed","time":"2026-03-12T09:00:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"o1","type":"order.placed","time":"2026-03-02T09:00:00Z","patient":"P1",'
        '"refs":{"order":"O1"},"attrs":{"priority":"stat"}}',
    )
    run = run_events(evs, as_of=AS_OF)
    assert final(run, "result-overdue") == [("O1", "met")]
    assert [o.outcome for o in run.emitted if o.detector == "result-overdue"] == ["met"]


# A horizon of three hours (and a late retention of one), so that what the horizon has
# passed is forgotten within a test's few hours of events.
SHORT = "engine:\n  dedupe_window: 1m\n  late_retention: 1h\n  correction_horizon: 3h\n"


def short_horizon_run(evs: list[Event]) -> Any:
    """``evs`` run in the order given under ``SHORT``, checked to use every event and to
    end with the final ledger of their in-order delivery."""
    run = run_events(evs, rules=SHORT, as_of=AS_OF)
    assert run.engine.stats.refused == {}
    in_order = run_events(in_time_order(evs), rules=SHORT, as_of=AS_OF)
    assert run.final_ledger() == in_order.final_ledger()
    return run


def test_a_repeated_opening_event_is_recognised_after_its_opportunity_was_decided() -> None:
    # a discharge keyed in twice: the second message is taken in by the first's
    # opportunity; delivered again hours later (within the horizon, after the dedupe
    # window, and after the horizon has passed the first decision) it must still be
    evs = events(
        '{"id":"dc1","type":"encounter.discharged","time":"2026-03-02T09:00:00Z",'
        '"patient":"P1","refs":{"encounter":"E1"}}',
        '{"id":"ds1","type":"document.sent","time":"2026-03-02T09:05:00Z","patient":"P1",'
        '"refs":{"encounter":"E1"},"attrs":{"kind":"discharge-summary"}}',
        '{"id":"dc2","type":"encounter.discharged","time":"2026-03-02T10:10:00Z",'
        '"patient":"P1","refs":{"encounter":"E1"}}',
        '{"id":"f1","type":"appointment.missed","time":"2026-03-02T12:40:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"dc2","type":"encounter.discharged","time":"2026-03-02T10:10:00Z",'
        '"patient":"P1","refs":{"encounter":"E1"}}',
    )
    assert final(short_horizon_run(evs), "discharge-summary-overdue") == [("E1", "met")]


def test_a_close_past_the_late_retention_outlives_the_opportunity_it_came_for() -> None:
    # o1's result came after its late retention (o1 stays missed); the horizon then
    # passes o1, which is forgotten; a second order message for the same order, timed
    # before the result and arriving now, still finds that result
    evs = events(
        '{"id":"o1","type":"order.placed","time":"2026-03-02T09:00:00Z","patient":"P1",'
        '"refs":{"order":"O1"},"attrs":{"priority":"stat"}}',
        '{"id":"r1","type":"result.reported","time":"2026-03-02T12:00:00Z","patient":"P1",'
        '"refs":{"order":"O1"}}',
        '{"id":"f1","type":"appointment.missed","time":"2026-03-02T14:55:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"o2","type":"order.placed","time":"2026-03-02T11:50:00Z","patient":"P1",'
        '"refs":{"order":"O1"},"attrs":{"priority":"stat"}}',
    )
    assert final(short_horizon_run(evs), "result-overdue") == [("O1", "met"), ("O1", "missed")]


def test_missed_is_declared_only_once_the_watermark_is_past_due() -> None:
    evs = events(
        '{"id":"o1","type":"order.placed","time":"2026-03-02T09:00:00Z","patient":"P1",'
        '"refs":{"order":"O1"},"attrs":{"priority":"stat"}}',
        '{"id":"f1","type":"appointment.missed","time":"2026-03-02T10:10:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"r1","type":"result.reported","time":"2026-03-02T10:00:00Z","patient":"P1",'
        '"refs":{"order":"O1"}}',
    )
    run = run_events(evs, as_of=AS_OF)
    # the watermark stood exactly at the deadline: the result at the deadline is in time
    assert [o.outcome for o in run.emitted if o.detector == "result-overdue"] == ["met"]


def test_two_discharge_messages_for_one_encounter_make_one_opportunity() -> None:
    evs = events(
        '{"id":"dc1","type":"encounter.discharged","time":"2026-03-02T10:00:00Z",'
        '"patient":"P1","refs":{"encounter":"E1"}}',
        '{"id":"ds1","type":"document.sent","time":"2026-03-03T09:00:00Z","patient":"P1",'
        '"refs":{"encounter":"E1"},"attrs":{"kind":"discharge-summary"}}',
        '{"id":"dc2","type":"encounter.discharged","time":"2026-03-03T12:00:00Z",'
        '"patient":"P1","refs":{"encounter":"E1"}}',
    )
    for order in (evs, list(reversed(evs))):
        run = run_events(order, as_of=AS_OF)
        assert final(run, "discharge-summary-overdue") == [("E1", "met")]
        assert not run.open


def test_a_late_opening_event_waits_for_the_events_behind_it() -> None:
    # An archive read by a worker whose watermark is far ahead: each order's result
    # follows it in the backlog; nothing may be declared missed on the way.
    engine_out: list[Outcome] = []
    engine = Engine(parse_settings("").detectors, sink=engine_out.append)
    engine.process(
        event_from_dict(
            {
                "id": "now",
                "type": "appointment.missed",
                "time": "2026-03-19T00:00:00Z",
                "patient": "P9",
                "refs": {"appointment": "AX"},
            }
        )
    )
    for i in range(5):
        base = f"2026-03-0{i + 1}T09:00:00Z"
        late = f"2026-03-0{i + 1}T09:40:00Z"
        for obj in (
            {"id": f"o{i}", "type": "order.placed", "time": base, "patient": "P1",
             "refs": {"order": f"O{i}"}, "attrs": {"priority": "stat"}},
            {"id": f"r{i}", "type": "result.reported", "time": late, "patient": "P1",
             "refs": {"order": f"O{i}"}},
        ):  # fmt: skip
            engine.process(event_from_dict(obj))
    assert engine_out == []  # nothing decided while the backlog is read
    engine.advance_to(engine.watermark)  # the next tick
    assert sorted(o.outcome for o in engine_out) == ["met"] * 5


def test_an_event_beyond_the_horizon_is_refused_and_named() -> None:
    refused: list[tuple[str, str]] = []
    engine = Engine(
        parse_settings("").detectors,
        correction_horizon=86400.0,
        on_reject=lambda ev, kind, reason: refused.append((ev.id, kind)),
    )
    for obj in (
        {"id": "a", "type": "appointment.missed", "time": "2026-03-10T00:00:00Z",
         "patient": "P9", "refs": {"appointment": "AX"}},
        {"id": "old", "type": "order.placed", "time": "2026-03-01T00:00:00Z",
         "patient": "P1", "refs": {"order": "O1"}},
    ):  # fmt: skip
        engine.process(event_from_dict(obj))
    assert refused == [("old", BEYOND_HORIZON)]
    assert engine.stats.refused == {BEYOND_HORIZON: 1}


def test_the_same_id_on_a_different_event_is_a_conflict_not_a_duplicate() -> None:
    refused: list[tuple[str, str, str]] = []
    engine = Engine(
        parse_settings("").detectors,
        on_reject=lambda ev, kind, reason: refused.append((ev.id, kind, reason)),
    )
    first = {"id": "MSG00012", "type": "order.placed", "time": "2026-03-02T09:00:00Z",
             "patient": "P1", "refs": {"order": "O1"}}  # fmt: skip
    engine.process(event_from_dict(first))
    engine.process(event_from_dict(first))  # a re-delivery: a duplicate
    # a sender reusing its message control ids: another message, another time
    other = {**first, "type": "result.reported", "time": "2026-03-04T11:30:00Z", "patient": "P2"}
    engine.process(event_from_dict(other))
    assert engine.stats.duplicates == 1
    [(eid, kind, reason)] = refused
    assert (eid, kind) == ("MSG00012", ID_CONFLICT)
    assert "2026-03-02T09:00:00" in reason and "2026-03-04T11:30:00" in reason


def test_a_void_arriving_late_amends_a_met_decision_without_duplicating_it() -> None:
    evs = events(
        '{"id":"o1","type":"order.placed","time":"2026-03-02T09:00:00Z","patient":"P1",'
        '"refs":{"order":"O1"},"attrs":{"priority":"stat"}}',
        '{"id":"r1","type":"result.reported","time":"2026-03-02T09:50:00Z","patient":"P1",'
        '"refs":{"order":"O1"}}',
        '{"id":"f1","type":"appointment.missed","time":"2026-03-05T09:00:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"c1","type":"order.cancelled","time":"2026-03-02T09:20:00Z","patient":"P1",'
        '"refs":{"order":"O1"}}',
    )
    run = run_events(evs, as_of=AS_OF)
    emitted = [(o.outcome, o.amended_from) for o in run.emitted if o.detector == "result-overdue"]
    assert emitted == [("met", None), ("void", "met")]
    reference = run_events(in_time_order(evs), as_of=AS_OF)
    assert run.final_ledger() == reference.final_ledger()


def test_an_unknown_initiator_is_monitored_and_can_be_switched_off() -> None:
    evs = events(
        '{"id":"c1","type":"appointment.cancelled","time":"2026-03-02T09:00:00Z",'
        '"patient":"P1","refs":{"appointment":"A1"}}',
    )
    run = run_events(evs, as_of=AS_OF)
    [o] = [o for o in run.latest.values() if o.detector == "reschedule-notice"]
    assert (o.outcome, o.attrs["initiated_by"]) == ("missed", "unknown")
    off = "detectors:\n  reschedule-notice:\n    monitor_unknown_initiator: false\n"
    assert final(run_events(evs, rules=off, as_of=AS_OF), "reschedule-notice") == []


def test_no_notice_is_owed_to_a_patient_who_has_died() -> None:
    change = (
        '{{"id":"{id}","type":"appointment.rescheduled","time":"{t}","patient":"P1",'
        '"refs":{{"appointment":"{a}"}},"attrs":{{"initiated_by":"hospital"}}}}'
    )
    evs = events(
        # a change after the death: no notice owed
        change.format(id="c1", t="2026-03-03T09:00:00Z", a="A1"),
        # a change before the death, the death before the notice deadline: voided too
        change.format(id="c2", t="2026-03-01T20:00:00Z", a="A2"),
        # the death, recorded only days later
        '{"id":"f1","type":"appointment.missed","time":"2026-03-08T10:00:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"x1","type":"patient.died","time":"2026-03-02T09:00:00Z","patient":"P1"}',
        # a cancellation the site mapping says was because the patient died
        '{"id":"c3","type":"appointment.cancelled","time":"2026-03-02T10:00:00Z",'
        '"patient":"P2","refs":{"appointment":"A3"},'
        '"attrs":{"initiated_by":"patient","deceased":true}}',
    )
    run = run_events(evs, as_of=AS_OF)
    voided = {
        o.key: o.attrs.get("void_reason")
        for o in run.latest.values()
        if o.detector == "reschedule-notice"
    }
    assert voided == {
        "A1": "the patient's death is recorded",
        "A2": "the patient's death is recorded",
        "A3": "the change was made because the patient died",
    }
    assert all(
        o.outcome == "void" for o in run.latest.values() if o.detector == "reschedule-notice"
    )
    reference = run_events(in_time_order(evs), as_of=AS_OF)
    assert run.final_ledger() == reference.final_ledger()
    [summary] = [o.summary for o in run.latest.values() if o.key == "A3"]
    assert summary.endswith("no longer expected: the change was made because the patient died.")


def _clinic(*bookings: tuple[str, str, str, str]) -> list[Event]:
    """A session S1 (2 places, starting 14:00 on 2 March) and ``bookings``: (id, type,
    time, appointment) into S1."""
    lines = [
        '{"id":"c1","type":"session.capacity","time":"2026-03-01T08:00:00Z",'
        '"refs":{"session":"S1"},"attrs":{"capacity":2,"start":"2026-03-02T14:00:00Z",'
        '"clinic":"Cardiology OPD"}}'
    ]
    for eid, etype, time, appt in bookings:
        lines.append(
            f'{{"id":"{eid}","type":"{etype}","time":"{time}","patient":"P-{appt}",'
            f'"refs":{{"appointment":"{appt}","session":"S1"}},'
            '"attrs":{"start":"2026-03-02T14:00:00Z"}}'
        )
    return events(*lines)


def _later() -> list[Event]:
    """An event of another session in the evening: the watermark moves past the morning's
    bookings, so anything timed in the morning that comes after it is late."""
    return events(
        '{"id":"t","type":"session.capacity","time":"2026-03-01T20:00:00Z",'
        '"refs":{"session":"S9"},"attrs":{"capacity":1}}'
    )


def _clinic_ledger(evs: list[Event], as_of: str = AS_OF) -> list[tuple[Any, ...]]:
    run = run_events(evs, as_of=as_of)
    return [
        (o.outcome, o.opened_at, tuple(o.evidence), o.amended_from)
        for o in run.latest.values()
        if o.detector == "clinic-overbooked"
    ]


def _overbooked_then_cancelled() -> tuple[list[Event], list[Event]]:
    """Three bookings for S1's two places, and the cancellation of one of them timed
    before the third booking (to be delivered late)."""
    evs = _clinic(
        ("b1", "appointment.booked", "2026-03-01T09:00:00Z", "A1"),
        ("b2", "appointment.booked", "2026-03-01T09:10:00Z", "A2"),
        ("b3", "appointment.booked", "2026-03-01T11:00:00Z", "A3"),
    )
    late = events(
        '{"id":"x2","type":"appointment.cancelled","time":"2026-03-01T10:00:00Z",'
        '"patient":"P-A2","refs":{"appointment":"A2"}}'
    )
    return evs, late


def test_a_late_cancellation_takes_back_an_overbooking_it_came_before() -> None:
    # Three bookings for two places, then the cancellation of one, timed before the
    # third booking but delivered a day late: the session never went over.
    evs, late = _overbooked_then_cancelled()
    delivered = [*evs, *_later(), *late]
    run = run_events(delivered, as_of=AS_OF)
    [record] = [o for o in run.latest.values() if o.key == "S1"]
    assert (record.outcome, record.failure_status) == ("met", "withdrawn")
    emitted = [o.outcome for o in run.emitted if o.key == "S1"]
    assert emitted[0] == "violation" and emitted[-1] == "met"
    in_order = run_events(in_time_order(delivered), as_of=AS_OF)
    assert [o.outcome for o in in_order.latest.values() if o.key == "S1"] == ["met"]


def test_a_late_booking_makes_the_overbooking_it_caused_and_moves_an_earlier_one() -> None:
    base = _clinic(
        ("b1", "appointment.booked", "2026-03-01T09:00:00Z", "A1"),
        ("b2", "appointment.booked", "2026-03-01T09:10:00Z", "A2"),
    )
    third = events(
        '{"id":"b3","type":"appointment.booked","time":"2026-03-01T09:30:00Z",'
        '"patient":"P-A3","refs":{"appointment":"A3","session":"S1"}}'
    )
    fourth = events(
        '{"id":"b4","type":"appointment.booked","time":"2026-03-01T09:20:00Z",'
        '"patient":"P-A4","refs":{"appointment":"A4","session":"S1"}}'
    )
    # the third arrives late: the violation is found; the fourth, later still and timed
    # before it, moves the violation to its own time
    delivered = [*base, *_later(), *third, *fourth]
    got = _clinic_ledger(delivered)
    want = _clinic_ledger(in_time_order(delivered))
    assert [g[:3] for g in got] == [w[:3] for w in want]
    assert got[0][:3] == ("violation", want[0][1], ("b4",))


def test_clinic_sessions_survive_a_restart_between_the_booking_and_the_late_cancellation() -> None:
    evs, late = _overbooked_then_cancelled()
    settings = parse_settings("", "<test>")
    out: list[Outcome] = []
    first = Engine.from_settings(settings, sink=out.append)
    first.process_many([*evs, *_later()])
    state = orjson.loads(orjson.dumps(first.snapshot(), option=orjson.OPT_SERIALIZE_NUMPY))
    second = Engine.from_settings(settings, sink=out.append)
    second.restore(state)
    second.process_many(late)
    second.advance_to(epoch_of(AS_OF))
    latest = {o.failure_id: o for o in out if o.key == "S1"}
    [record] = latest.values()
    assert record.outcome == "met" and record.failure_status == "withdrawn"


def epoch_of(text: str) -> float:
    from detectors.events import parse_time

    return parse_time(text)


def test_a_session_worked_out_again_is_forgotten_with_the_events_it_came_from() -> None:
    # S2's booking decided it at the booking's start (13:15: no capacity known yet); its
    # capacity, arriving late, gives an earlier start (13:00) and the overbooking. Once
    # the horizon has passed 13:00 that capacity is forgotten, and a later move of the
    # booking must not work the session out again without it ("within None places")
    evs = events(
        '{"id":"b1","type":"appointment.booked","time":"2026-03-02T09:00:00Z","patient":"P1",'
        '"refs":{"appointment":"A2","session":"S2"},"attrs":{"start":"2026-03-02T13:15:00Z"}}',
        '{"id":"f1","type":"appointment.missed","time":"2026-03-02T13:25:00Z","patient":"P9",'
        '"refs":{"appointment":"AX"}}',
        '{"id":"c1","type":"session.capacity","time":"2026-03-02T11:05:00Z",'
        '"refs":{"session":"S2"},"attrs":{"capacity":0,"start":"2026-03-02T13:00:00Z"}}',
        '{"id":"f2","type":"appointment.missed","time":"2026-03-02T16:15:00Z","patient":"P9",'
        '"refs":{"appointment":"AY"}}',
        '{"id":"b2","type":"appointment.booked","time":"2026-03-02T13:45:00Z","patient":"P1",'
        '"refs":{"appointment":"A2"}}',
    )
    run = short_horizon_run(evs)
    assert final(run, "clinic-overbooked") == [("S2", "violation")]
