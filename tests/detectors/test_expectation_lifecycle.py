"""The lifecycle every expectation detector shares: met, late, missed, void, duplicates,
out-of-order arrival within the lateness, and a late close after a declared miss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from detectors.events import Event
from detectors.testing import ev, run_events
from tests.detectors.helpers import FAR, at, epoch


@dataclass
class Case:
    detector: str
    key_ref: str
    opener: str
    closer: str
    within_h: float
    open_attrs: dict[str, Any] = field(default_factory=dict)
    close_attrs: dict[str, Any] = field(default_factory=dict)
    voider: str | None = None

    def open(self, hours: float = 0.0, key: str = "K1", **kw: Any) -> Event:
        return ev(self.opener, at(hours), refs={self.key_ref: key}, attrs=self.open_attrs, **kw)

    def close(self, hours: float, key: str = "K1", **kw: Any) -> Event:
        return ev(self.closer, at(hours), refs={self.key_ref: key}, attrs=self.close_attrs, **kw)


CASES = [
    Case(
        "result-overdue",
        "order",
        "order.placed",
        "result.reported",
        4,
        open_attrs={"priority": "urgent", "test": "CRP"},
        voider="order.cancelled",
    ),
    Case(
        "result-unacknowledged",
        "order",
        "result.reported",
        "result.acknowledged",
        1,
        open_attrs={"critical": True, "abnormal": True},
    ),
    Case(
        "discharge-summary-overdue",
        "encounter",
        "encounter.discharged",
        "document.sent",
        24,
        close_attrs={"kind": "discharge-summary"},
    ),
    Case(
        "clinic-letter-overdue",
        "appointment",
        "appointment.attended",
        "document.sent",
        24 * 7,
        close_attrs={"kind": "clinic-letter"},
    ),
    Case(
        "reschedule-notice",
        "appointment",
        "appointment.rescheduled",
        "patient.notified",
        48,
        open_attrs={"initiated_by": "hospital", "previous_start": at(days=30)},
    ),
]
IDS = [c.detector for c in CASES]


def only(case: Case) -> str:
    """A rules file with just this detector on (so other detectors' outcomes don't mix in)."""
    from detectors.builtin import BUILTINS

    return "detectors:\n" + "".join(f"  {n}: off\n" for n in BUILTINS if n != case.detector)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_met_when_closed_before_the_deadline(case: Case) -> None:
    out = run_events([case.open(), case.close(case.within_h * 0.5)], rules=only(case), as_of=FAR)
    [o] = out.by_detector(case.detector)
    assert o.outcome == "met"
    assert o.due_at == epoch(case.within_h)
    assert o.closed_at == epoch(case.within_h * 0.5)
    assert o.failure_status is None


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_close_exactly_at_the_deadline_is_met(case: Case) -> None:
    out = run_events([case.open(), case.close(case.within_h)], rules=only(case), as_of=FAR)
    assert out.outcome_of(case.detector, "K1") == "met"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_missed_when_nothing_comes(case: Case) -> None:
    out = run_events([case.open()], rules=only(case), as_of=FAR)
    [o] = out.by_detector(case.detector)
    assert o.outcome == "missed"
    assert o.failure_status == "missed"
    assert o.closed_at is None
    assert "has not happened" in o.summary


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_late_when_closed_after_the_deadline_in_order(case: Case) -> None:
    late_at = case.within_h + 2
    out = run_events([case.open(), case.close(late_at)], rules=only(case), as_of=FAR)
    [o] = out.by_detector(case.detector)
    assert (o.outcome, o.closed_at) == ("late", epoch(late_at))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_late_after_missed_amends_the_same_failure(case: Case) -> None:
    # Something far later pushes the watermark past the deadline: missed is declared.
    # Then the close arrives: the same failure_id becomes late, never a second failure.
    pusher = ev("other.thing", at(case.within_h + 5))
    late_at = case.within_h + 4.9  # within the allowed lateness (10m) of the pusher
    out = run_events([case.open(), pusher, case.close(late_at)], rules=only(case), as_of=FAR)
    mine = [o for o in out.emitted if o.detector == case.detector]
    assert [o.outcome for o in mine] == ["missed", "late"]
    assert mine[0].failure_id == mine[1].failure_id
    assert mine[1].closed_at == epoch(late_at)
    assert len(out.by_detector(case.detector)) == 1


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_duplicates_change_nothing(case: Case) -> None:
    o1, c1 = case.open(id="a1"), case.close(case.within_h * 0.5, id="b1")
    once = run_events([o1, c1], rules=only(case), as_of=FAR)
    twice = run_events([o1, o1, c1, o1, c1], rules=only(case), as_of=FAR)
    assert once.canonical() == twice.canonical()
    assert len(twice.emitted) == len(once.emitted)
    assert twice.engine.stats.duplicates == 3


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_close_arriving_before_open_within_lateness(case: Case) -> None:
    # The close happened after the open in event time but its message came first.
    o, c = case.open(0), case.close(0.1)
    out = run_events([c, o], rules=only(case), as_of=FAR)
    assert out.outcome_of(case.detector, "K1") == "met"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_close_before_open_in_event_time_does_not_count(case: Case) -> None:
    out = run_events([case.close(-1), case.open(0)], rules=only(case), as_of=FAR)
    assert out.outcome_of(case.detector, "K1") == "missed"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_other_keys_do_not_close(case: Case) -> None:
    out = run_events([case.open(key="K1"), case.close(1, key="K2")], rules=only(case), as_of=FAR)
    assert out.outcome_of(case.detector, "K1") == "missed"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_open_until_the_watermark_passes_the_deadline(case: Case) -> None:
    out = run_events([case.open()], rules=only(case))
    assert out.outcome_of(case.detector, "K1") == "open"
    assert out.latest == {}
    # --as-of just before the deadline still declares nothing
    out = run_events([case.open()], rules=only(case), as_of=epoch(case.within_h) - 1)
    assert out.outcome_of(case.detector, "K1") == "open"


def test_void_before_the_deadline() -> None:
    case = CASES[0]
    cancel = ev("order.cancelled", at(1), refs={"order": "K1"})
    out = run_events([case.open(), cancel], rules=only(case), as_of=FAR)
    [o] = out.by_detector("result-overdue")
    assert (o.outcome, o.closed_at) == ("void", epoch(1))


def test_a_void_after_the_deadline_changes_nothing() -> None:
    # the order was overdue before it was cancelled: the failure stands (a result that
    # came after the cancellation still makes it late, not void)
    case = CASES[0]
    cancel = ev("order.cancelled", at(5), refs={"order": "K1"})
    out = run_events([case.open(), cancel], rules=only(case), as_of=FAR)
    assert out.outcome_of("result-overdue", "K1") == "missed"
    result = ev("result.reported", at(6), refs={"order": "K1"})
    out = run_events([case.open(), cancel, result], rules=only(case), as_of=FAR)
    assert out.outcome_of("result-overdue", "K1") == "late"


def test_result_before_a_cancel_wins() -> None:
    case = CASES[0]
    result = ev("result.reported", at(2), refs={"order": "K1"})
    cancel = ev("order.cancelled", at(3), refs={"order": "K1"})
    out = run_events([case.open(), cancel, result], rules=only(case), as_of=FAR)
    assert out.outcome_of("result-overdue", "K1") == "met"


def test_missed_then_beyond_lateness_evidence_of_met_withdraws_the_failure() -> None:
    # The feed was down: a result that happened in time arrives hours after the miss.
    case = CASES[0]
    pusher = ev("other.thing", at(30))
    in_time = ev("result.reported", at(2), refs={"order": "K1"})
    out = run_events([case.open(), pusher, in_time], rules=only(case), as_of=FAR)
    outcomes = [o.outcome for o in out.emitted if o.detector == "result-overdue"]
    assert outcomes == ["missed", "met"]
    [o] = out.by_detector("result-overdue")
    assert o.failure_status == "withdrawn"
    assert out.engine.stats.late_events == 1


def test_a_late_result_before_a_late_cancel_is_late_whatever_arrives_first() -> None:
    # Found by the property test. Urgent order, due at 4h; resulted at 4h05, cancelled at
    # 4h10. When the cancel arrives first it moves the watermark to 4h00, past the
    # deadline: the miss must not be made final while a close before the cancel may
    # still arrive within the lateness.
    case = CASES[0]
    result = ev("result.reported", at(4 + 5 / 60), refs={"order": "K1"})
    cancel = ev("order.cancelled", at(4 + 10 / 60), refs={"order": "K1"})
    for order in ([case.open(), cancel, result], [case.open(), result, cancel]):
        out = run_events(order, rules=only(case), as_of=FAR)
        [o] = out.by_detector(case.detector)
        assert (o.outcome, o.closed_at) == ("late", epoch(4 + 5 / 60))
