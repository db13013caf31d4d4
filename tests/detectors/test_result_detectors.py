from __future__ import annotations

import pytest

from detectors.testing import ev, run_events
from tests.detectors.helpers import FAR, at, epoch


def order(priority: str | None, oid: str = "O1", test: str = "FBC", hours: float = 0.0) -> object:
    attrs = {"test": test}
    if priority is not None:
        attrs["priority"] = priority
    return ev("order.placed", at(hours), refs={"order": oid}, attrs=attrs)


@pytest.mark.parametrize(
    ("priority", "hours"), [("stat", 1), ("urgent", 4), ("routine", 72), (None, 72), ("weird", 72)]
)
def test_turnaround_by_priority(priority: str | None, hours: float) -> None:
    out = run_events([order(priority)], as_of=FAR)
    [o] = out.by_detector("result-overdue")
    assert o.due_at == epoch(hours)


def test_turnaround_override_per_test_code() -> None:
    rules = """
detectors:
  result-overdue:
    stat: 2h
    overrides:
      - when: {test: TROP}
        stat: 30m
"""
    out = run_events(
        [order("stat", "O1", "TROP"), order("stat", "O2", "FBC")], rules=rules, as_of=FAR
    )
    due = {o.key: o.due_at for o in out.by_detector("result-overdue")}
    assert due == {"O1": epoch(0.5), "O2": epoch(2)}


def test_carried_attrs_for_qi_slicing() -> None:
    e = ev(
        "order.placed",
        at(0),
        refs={"order": "O1"},
        attrs={"priority": "stat", "test": "CRP", "site": "north", "ward": "x"},
    )
    [o] = run_events([e], as_of=FAR).by_detector("result-overdue")
    assert o.attrs == {"priority": "stat", "test": "CRP", "site": "north"}


def result(
    hours: float, *, critical: bool = False, abnormal: bool = False, oid: str = "O1"
) -> object:
    return ev(
        "result.reported",
        at(hours),
        refs={"order": oid},
        attrs={"critical": critical, "abnormal": abnormal},
    )


def test_normal_results_need_no_acknowledgement() -> None:
    out = run_events([result(0)], as_of=FAR)
    assert out.by_detector("result-unacknowledged") == []


def test_critical_within_1h_abnormal_within_7d() -> None:
    out = run_events(
        [result(0, critical=True, oid="C"), result(0, abnormal=True, oid="A")], as_of=FAR
    )
    due = {o.key: (o.due_at, o.attrs["severity"]) for o in out.by_detector("result-unacknowledged")}
    assert due == {"C": (epoch(1), "critical"), "A": (epoch(days=7), "abnormal")}


def test_critical_ack_late_is_late() -> None:
    ack = ev("result.acknowledged", at(1.5), refs={"order": "O1"})
    out = run_events([result(0, critical=True), ack], as_of=FAR)
    [o] = out.by_detector("result-unacknowledged")
    assert o.outcome == "late"
    assert "30m after" in o.summary
