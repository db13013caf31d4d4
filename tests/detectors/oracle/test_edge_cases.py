"""Hand-made edge cases: the oracle and the streaming engine must agree on every field
(``compare.both`` runs the engine in event-time order and as given)."""

from __future__ import annotations

import pytest

from detectors.errors import EventError
from detectors.testing import ev
from tests.detectors.helpers import FAR, at, epoch
from tests.detectors.oracle.compare import both, outcome_of

DAY_H = 24.0


def order(hours: float, key: str = "O1", priority: str = "stat", **kw: object) -> object:
    return ev("order.placed", at(hours), refs={"order": key}, attrs={"priority": priority}, **kw)


def result(hours: float, key: str = "O1", **kw: object) -> object:
    return ev("result.reported", at(hours), refs={"order": key}, **kw)


# ------------------------------------------------------------------ expectations


def test_ties_go_to_the_smaller_id_and_to_the_closing_event() -> None:
    res = both(
        [
            order(0, id="a1"),
            result(0.5, id="r2"),
            result(0.5, id="r10"),  # "r10" < "r2" as text
            order(0, key="O2", id="a2"),
            ev("order.cancelled", at(0.5), refs={"order": "O2"}, id="c1"),
            result(0.5, key="O2", id="r3"),  # B and Z at the same time: B wins
            order(0, key="O3", id="a3"),
            result(0, key="O3", id="r4"),  # at the opening time: counts
            order(0, key="O4", id="a4"),
            result(1, key="O4", id="r5"),  # at the deadline: in time
        ],
        as_of=FAR,
    )
    by_key = {o.key: o for o in res.outcomes if o.detector == "result-overdue"}
    assert by_key["O1"].evidence == ["a1", "r10"]
    assert (by_key["O2"].outcome, by_key["O2"].evidence) == ("met", ["a2", "r3"])
    assert by_key["O3"].outcome == by_key["O4"].outcome == "met"


def test_void_before_and_after_the_deadline() -> None:
    res = both(
        [
            order(0, key="O1"),
            ev("order.cancelled", at(0.5), refs={"order": "O1"}),
            order(0, key="O2"),
            ev("order.cancelled", at(2), refs={"order": "O2"}),  # after the 1 h deadline
            result(3, key="O2"),  # a void after the deadline changes nothing: late
        ],
        as_of=FAR,
    )
    assert outcome_of(res, "result-overdue", "O1") == "void"
    assert outcome_of(res, "result-overdue", "O2") == "late"


def test_a_close_before_the_open_does_not_count() -> None:
    res = both([result(0, id="early"), order(1), result(3)], as_of=FAR)
    o = next(o for o in res.outcomes if o.detector == "result-overdue")
    assert (o.outcome, o.amended_from) == ("late", "missed")
    assert o.evidence[1] != "early"


def test_missed_turns_late_within_the_retention_only() -> None:
    res = both(
        [
            order(0, key="O1"),
            result(DAY_H * 10, key="O1"),  # within the 30 d retention: late
            order(0, key="O2"),
            ev("appointment.missed", at(DAY_H * 31), refs={"appointment": "X"}),
            result(DAY_H * 32, key="O2"),  # past due + retention, with the watermark in between
        ],
        as_of=FAR,
    )
    assert outcome_of(res, "result-overdue", "O1") == "late"
    assert outcome_of(res, "result-overdue", "O2") == "missed"


def test_one_close_closes_every_opener_of_its_key_before_it() -> None:
    res = both(
        [
            order(0, id="a1"),
            order(0.25, id="a2"),
            result(0.5, id="r1"),
            order(0.75, id="a3"),  # after the result: not closed by it
        ],
        as_of=FAR,
    )
    got = sorted((o.evidence[0], o.outcome) for o in res.outcomes if o.detector == "result-overdue")
    assert got == [("a1", "met"), ("a2", "met"), ("a3", "missed")]


def test_as_of_mid_stream_leaves_opportunities_open() -> None:
    res = both(
        [
            order(0, key="O1", priority="routine"),  # due at 72 h
            order(0, key="O2"),  # due at 1 h: missed by the as-of
            result(30, key="O2"),  # after the as-of: not yet late
            order(0, key="O3", priority="urgent"),
            result(2, key="O3"),
            ev("encounter.discharged", at(1), refs={"encounter": "E1"}),
        ],
        as_of=at(20),
        allowed_lateness=10 * 86400.0,  # the last event is far ahead; keep the watermark back
    )
    assert outcome_of(res, "result-overdue", "O1") == "open"
    assert outcome_of(res, "result-overdue", "O2") == "missed"
    assert outcome_of(res, "result-overdue", "O3") == "met"
    assert outcome_of(res, "discharge-summary-overdue", "E1") == "open"
    assert res.watermark == epoch(20)


def test_opening_events_without_their_key_open_nothing() -> None:
    res = both(
        [
            ev("order.placed", at(0), attrs={"priority": "stat"}),
            ev("result.reported", at(0), refs={"order": ""}, attrs={"critical": True}),
        ],
        as_of=FAR,
    )
    assert [o.key for o in res.outcomes] == [""]  # an empty id is still an id


def test_duplicates_first_copy_wins() -> None:
    first = order(0, key="O1", id="dup")
    again = ev("order.placed", at(0), refs={"order": "O1"}, attrs={"priority": "routine"}, id="dup")
    res = both([first, again, result(2, key="O1")], as_of=FAR)
    assert res.duplicates == 1
    assert outcome_of(res, "result-overdue", "O1") == "late"  # stat, not routine


def test_priorities_severities_and_kinds_are_read_exactly() -> None:
    res = both(
        [
            order(0, key="O1", priority="URGENT"),  # unknown priority: routine
            ev("result.reported", at(0), refs={"order": "R3"}, attrs={"abnormal": True}),
            ev("result.reported", at(0), refs={"order": "R4"}, attrs={"critical": True}),
            ev("encounter.discharged", at(0), refs={"encounter": "E1"}),
            ev("document.sent", at(1), refs={"encounter": "E1"}, attrs={"kind": "clinic-letter"}),
        ],
        as_of=FAR,
    )
    due = {(o.detector, o.key): o.due_at - o.opened_at for o in res.outcomes if o.due_at}
    assert due[("result-overdue", "O1")] == 72 * 3600
    assert due[("result-unacknowledged", "R3")] == 7 * 86400
    assert due[("result-unacknowledged", "R4")] == 3600
    assert outcome_of(res, "discharge-summary-overdue", "E1") == "missed"  # wrong kind


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({"priority": 1}, "attrs.priority"),
        ({"critical": "true"}, "attrs.critical"),
        ({"critical": 1}, "attrs.critical"),
        ({"abnormal": "yes"}, "attrs.abnormal"),
        ({"capacity": "12"}, "attrs.capacity"),
        ({"capacity": True}, "attrs.capacity"),
        ({"capacity": 2.5}, "attrs.capacity"),
        ({"recipient": "family"}, "attrs.recipient"),
    ],
)
def test_an_attr_of_the_wrong_type_is_refused_not_silently_ignored(
    attrs: dict[str, object], field: str
) -> None:
    with pytest.raises(EventError) as caught:
        ev("result.reported", at(0), refs={"order": "R1"}, attrs=attrs)
    assert caught.value.field == field


def test_reschedule_notice_deadlines() -> None:
    def change(hours: float, key: str, **attrs: object) -> object:
        attrs = {"initiated_by": "hospital", **attrs}
        return ev("appointment.rescheduled", at(hours), refs={"appointment": key}, attrs=attrs)

    res = both(
        [
            change(0, "A1", previous_start=at(10)),  # due at the previous start
            change(0, "A2", previous_start=at(-5)),  # previous start already past: 48 h
            change(0, "A3", previous_start="next Tuesday"),  # unreadable: 48 h
            change(0, "A4", previous_start="2026-03-02T19:00:00"),  # no offset: 48 h
            change(0, "A5", initiated_by="patient"),  # opens nothing
            ev(
                "appointment.cancelled",
                at(0),
                refs={"appointment": "A6"},
                attrs={"initiated_by": "hospital", "previous_start": at(100)},
            ),
            ev(
                "document.sent",
                at(5),
                refs={"appointment": "A1"},
                attrs={"kind": "appointment-letter"},
            ),
            ev("document.sent", at(5), refs={"appointment": "A2"}, attrs={"kind": "clinic-letter"}),
            ev("patient.notified", at(60), refs={"appointment": "A6"}),
        ],
        as_of=FAR,
    )
    due = {o.key: (o.due_at - o.opened_at) / 3600 for o in res.outcomes}
    assert due == {"A1": 10, "A2": 48, "A3": 48, "A4": 48, "A6": 48}
    assert outcome_of(res, "reschedule-notice", "A1") == "met"
    assert outcome_of(res, "reschedule-notice", "A2") == "missed"
    assert outcome_of(res, "reschedule-notice", "A6") == "late"


def test_explicit_null_attributes_are_carried_as_null() -> None:
    res = both(
        [ev("encounter.discharged", at(0), refs={"encounter": "E1"}, attrs={"site": None})],
        as_of=FAR,
    )
    assert res.outcomes[0].attrs == {"site": None}


# ------------------------------------------------------------------ settings


def test_a_threshold_override_and_a_disabled_detector() -> None:
    rules = """
detectors:
  result-overdue:
    routine: 24h
    overrides:
      - when: {test: TROP}
        routine: 2h
      - when: {test: TROP, site: north}
        routine: 30m
  discharge-summary-overdue: off
"""

    def placed(key: str, **attrs: object) -> object:
        return ev(
            "order.placed", at(0), refs={"order": key}, attrs={"priority": "routine", **attrs}
        )

    res = both(
        [
            placed("O1"),
            placed("O2", test="TROP"),
            placed("O3", test="TROP", site="north"),
            placed("O4", site="north"),
            ev("encounter.discharged", at(0), refs={"encounter": "E1"}),
        ],
        rules,
        as_of=FAR,
    )
    due = {o.key: (o.due_at - o.opened_at) / 3600 for o in res.outcomes}
    assert due == {"O1": 24, "O2": 2, "O3": 0.5, "O4": 24}
    assert "discharge-summary-overdue" not in res.detectors


def test_a_custom_rule_with_patterns_voids_and_an_override() -> None:
    rules = """
rules:
  - name: referral-triaged
    key: referral
    when:
      - {type: referral.received, attrs: {urgent: true}}
      - referral.escalated
    expect: {type: referral.triaged, attrs: {outcome: accepted}}
    void_on: referral.withdrawn
    within: 2d
    overrides:
      - when: {specialty: oncology}
        within: 1d
    opened: "Referral {referral} came in ({specialty})"
    expected: "triage"
"""

    def r(kind: str, hours: float, key: str, **attrs: object) -> object:
        return ev(f"referral.{kind}", at(hours), refs={"referral": key}, attrs=attrs)

    res = both(
        [
            r("received", 0, "R1", urgent=True),
            r("triaged", 10, "R1", outcome="accepted"),
            r("received", 0, "R2", urgent=False),  # not urgent: opens nothing
            r("received", 0, "R3", urgent=True, specialty="oncology"),
            r("triaged", 30, "R3", outcome="accepted"),  # late against 1 d
            r("escalated", 0, "R4"),
            r("triaged", 5, "R4", outcome="rejected"),  # wrong outcome: does not close
            r("withdrawn", 6, "R4"),
            r("received", 0, "R5", urgent=1),  # 1 == True, as in Python
        ],
        rules,
        as_of=FAR,
    )
    got = {o.key: o.outcome for o in res.outcomes if o.detector == "referral-triaged"}
    assert got == {"R1": "met", "R3": "late", "R4": "void", "R5": "missed"}
    assert any("(oncology)" in o.summary for o in res.outcomes)


def test_a_rule_that_opens_and_closes_on_one_type() -> None:
    rules = """
rules:
  - name: repeat-within-a-day
    key: order
    when: lab.flagged
    expect: lab.flagged
    within: 1d
"""
    events = [ev("lab.flagged", at(h), refs={"order": "O1"}) for h in (0, 5, 40)]
    res = both(events, rules, as_of=FAR)
    assert sorted(o.outcome for o in res.outcomes) == ["met", "met", "met"]


# ------------------------------------------------------------------ violations


def booked(hours: float, appt: str, session: str | None, **kw: object) -> object:
    refs = {"appointment": appt} | ({"session": session} if session else {})
    return ev("appointment.booked", at(hours), refs=refs, attrs={"start": at(200)}, **kw)


def moved(hours: float, appt: str, session: str | None) -> object:
    refs = {"appointment": appt} | ({"session": session} if session else {})
    return ev("appointment.rescheduled", at(hours), refs=refs, attrs={"initiated_by": "patient"})


def capacity(
    hours: float, session: str, places: object, start: float = 200, **kw: object
) -> object:
    attrs = {"capacity": places, "start": at(start), "clinic": "C1", "site": "north"}
    return ev(
        "session.capacity", at(hours), patient=None, refs={"session": session}, attrs=attrs, **kw
    )


def test_sessions_count_live_bookings_through_moves() -> None:
    res = both(
        [
            capacity(0, "S1", 2),
            capacity(0, "S2", 1),
            booked(1, "A1", "S1"),
            booked(2, "A2", "S1"),
            moved(3, "A2", "S1"),  # within the same session: still two
            moved(4, "A1", "S2"),  # out of S1 into S2
            booked(5, "A3", "S1"),
            ev("appointment.cancelled", at(6), refs={"appointment": "A3"}),
            booked(7, "A4", "S1"),
            moved(8, "A4", None),  # rescheduled to an unknown session: out of S1
            booked(9, "A5", "S2", id="tip"),  # S2 now holds A1 and A5: over
            booked(9.5, "A6", "S1"),
            booked(9.6, "A7", "S1", id="over-again"),
        ],
        as_of=FAR,
    )
    got = {o.key: (o.outcome, o.evidence, o.attrs.get("booked")) for o in res.outcomes}
    assert got["S2"] == ("violation", ["tip"], 2)
    assert got["S1"] == ("violation", ["over-again"], 3)


def test_capacity_updates_invalid_capacities_and_sessions_without_one() -> None:
    res = both(
        [
            capacity(0, "S1", 1),
            booked(1, "A1", "S1"),
            booked(2, "A2", "S1"),
            booked(2, "A3", "S1"),
            capacity(1.5, "S1", 5),  # raised before the second booking: never over
            # (a capacity of true is refused by the event contract: see the attr-type test)
            capacity(0, "S3", -1),  # not a capacity
            booked(1, "B1", "S2"),
            booked(1, "C1", "S4"),  # a session nobody gave a capacity: no opportunity
            capacity(0, "S5", 3),
            booked(1, "D1", "S5"),
            capacity(3, "S5", 0, id="cut"),  # capacity cut below the bookings: over
        ],
        as_of=FAR,
    )
    got = {o.key: (o.outcome, o.evidence, o.attrs) for o in res.outcomes}
    assert got["S1"][0] == "met" and got["S1"][2]["capacity"] == 5
    assert got["S5"][:2] == ("violation", ["cut"])
    assert set(got) == {"S1", "S5"}


def test_sessions_are_open_until_their_start_and_follow_a_moved_start() -> None:
    res = both(
        [
            capacity(0, "S1", 3, start=20),
            booked(1, "A1", "S1"),
            capacity(2, "S1", 3, start=40),  # the session moved later
            booked(25, "A2", "S1"),  # after the first start: still counts
            capacity(0, "S2", 3, start=60),
            booked(1, "B1", "S2"),
            ev("order.placed", at(50), refs={"order": "keep-time-moving"}),
        ],
        as_of=at(45),
        allowed_lateness=10 * 3600.0,
    )
    s1 = next(o for o in res.outcomes if o.key == "S1")
    assert (s1.outcome, s1.attrs["booked"], s1.due_at) == ("met", 2, epoch(40))
    assert outcome_of(res, "clinic-overbooked", "S2") == "open"


def test_a_booking_timer_before_any_capacity() -> None:
    res = both(
        [
            booked(0, "A1", "S1"),  # its start (200 h) sets the session's timer
            booked(1, "A2", "S1"),
            capacity(2, "S1", 1, start=150),  # an earlier start arrives later
            booked(3, "A3", "S1"),
            capacity(0, "S2", 4, start=250),
            booked(0, "B1", "S2"),
        ],
        as_of=FAR,
    )
    got = {o.key: o.outcome for o in res.outcomes}
    assert got == {"S1": "violation", "S2": "met"}


def test_contact_after_death() -> None:
    res = both(
        [
            ev("patient.died", at(10), patient="P1", id="d2"),
            ev("patient.died", at(10), patient="P1", id="d10"),  # same time, smaller id
            ev("patient.died", at(20), patient="P1", id="d3"),
            ev("patient.notified", at(5), patient="P1", refs={"appointment": "A1"}),
            ev("patient.notified", at(10), patient="P1", refs={"appointment": "A2"}),
            ev(
                "document.sent",
                at(11),
                patient="P1",
                attrs={"kind": "clinic-letter", "site": "n", "recipient": "patient"},
            ),
            # to the GP (a discharge summary's default recipient): required, not contact
            ev("document.sent", at(11), patient="P1", attrs={"kind": "discharge-summary"}),
            ev("document.sent", at(11), patient="P1", attrs={"kind": "clinic-letter"}),
            booked(12, "A3", "S9", patient="P1"),
            ev("patient.notified", at(12), patient="P2", refs={"appointment": "A4"}),
            ev("patient.notified", at(12), patient=None, refs={"appointment": "A5"}),
            ev("appointment.attended", at(13), patient="P1", refs={"appointment": "A3"}),
        ],
        as_of=FAR,
    )
    got = sorted(
        (o.attrs["contact"], o.evidence[0])
        for o in res.outcomes
        if o.detector == "contact-after-death"
    )
    assert got == [("appointment.booked", "d10"), ("document.sent", "d10")]
    doc = next(o for o in res.outcomes if o.attrs.get("contact") == "document.sent")
    assert doc.attrs == {"site": "n", "contact": "document.sent", "kind": "clinic-letter"}


def test_no_events() -> None:
    assert both([], as_of=FAR).outcomes == []
    assert both([]).watermark == float("-inf")


def test_a_close_just_past_the_retention_is_missed() -> None:
    # due at 1 h; the result comes 5 minutes after due + 30 d. Late only if
    # b <= due + late_retention: both must say missed, however the watermark moved.
    res = both([order(0), result(1 + 30 * DAY_H + 5 / 60)], as_of=FAR)
    assert outcome_of(res, "result-overdue", "O1") == "missed"


def test_a_death_voids_the_patients_notices_in_both() -> None:
    change = {"initiated_by": "hospital"}
    res = both(
        [
            ev("appointment.rescheduled", at(30), patient="P1", refs={"appointment": "A1"},
               attrs=change),
            ev("appointment.rescheduled", at(0), patient="P1", refs={"appointment": "A2"},
               attrs=change),
            ev("patient.died", at(10), patient="P1"),
            ev("appointment.cancelled", at(5), patient="P2", refs={"appointment": "A3"},
               attrs={"initiated_by": "patient", "deceased": True}),
            ev("appointment.cancelled", at(1), patient="P3", refs={"appointment": "A4"}),
        ],
        as_of=FAR,
    )  # fmt: skip
    got = {
        o.key: (o.outcome, o.attrs.get("void_reason"), o.attrs.get("initiated_by"))
        for o in res.outcomes
        if o.detector == "reschedule-notice"
    }
    assert got == {
        "A1": ("void", "the patient's death is recorded", None),
        "A2": ("void", "the patient's death is recorded", None),
        "A3": ("void", "the change was made because the patient died", None),
        "A4": ("missed", None, "unknown"),
    }
