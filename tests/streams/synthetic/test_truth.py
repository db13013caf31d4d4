"""The truth is exact: an independent reading of the spec over the emitted events agrees
with it record for record."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from detectors.events import event_from_dict, parse_time
from streams.synthetic import FailureRates, Generated, GeneratorConfig, failure_id, generate
from tests.streams.synthetic.reference import reference_outcomes

DETECTORS = {
    "reschedule-notice",
    "result-overdue",
    "result-unacknowledged",
    "discharge-summary-overdue",
    "clinic-letter-overdue",
    "clinic-overbooked",
    "contact-after-death",
}
FIELDS = [
    "detector",
    "key",
    "opening_event",
    "failure_id",
    "outcome",
    "opened_at",
    "due_at",
    "closed_at",
]


@pytest.mark.parametrize("fixture", ["small_week", "edgy_run"])
def test_truth_equals_an_independent_reading_of_the_spec(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    run: Generated = request.getfixturevalue(fixture)
    assert reference_outcomes(run.events) == run.truth


def test_truth_is_exact_on_medium_days_from_another_start() -> None:
    run = generate(GeneratorConfig(days=2, seed=8, scale="medium", start=date(2026, 10, 24)))
    assert reference_outcomes(run.events) == run.truth


def test_every_failure_kind_is_present_in_a_small_week(small_week: Generated) -> None:
    kinds = Counter((r["detector"], r["outcome"]) for r in small_week.truth)
    for detector in DETECTORS - {"clinic-overbooked", "contact-after-death"}:
        for outcome in ("met", "late", "missed"):
            assert kinds[detector, outcome] > 0, (detector, outcome)
    assert kinds["result-overdue", "void"] > 0
    assert kinds["clinic-overbooked", "violation"] > 0
    assert kinds["clinic-overbooked", "met"] > 0
    assert kinds["contact-after-death", "violation"] > 0


def test_no_failures_preset_still_has_opportunities() -> None:
    rates = FailureRates(**{f: 0.0 for f in FailureRates.__dataclass_fields__})
    run = generate(GeneratorConfig(days=3, seed=2, scale="small", rates=rates))
    assert run.truth
    assert {r["outcome"] for r in run.truth} == {"met"}


def test_records_have_the_documented_shape(edgy_run: Generated) -> None:
    truth = edgy_run.truth
    assert truth == sorted(truth, key=lambda r: (r["detector"], r["failure_id"]))
    assert {r["detector"] for r in truth} == DETECTORS
    ids = set()
    for r in truth:
        assert list(r) == FIELDS
        assert r["failure_id"] == failure_id(r["detector"], r["key"], r["opening_event"])
        assert r["failure_id"] not in ids
        ids.add(r["failure_id"])
        assert r["opened_at"].endswith("+00:00")
        assert (r["closed_at"] is not None) == (r["outcome"] == "late")
        if r["detector"] == "contact-after-death":
            assert r["due_at"] is None and r["outcome"] == "violation"
        else:
            assert r["due_at"].endswith("+00:00")
        if r["detector"] == "clinic-overbooked":
            assert r["key"] == r["opening_event"]


def test_late_closures_stay_well_within_the_late_retention(edgy_run: Generated) -> None:
    for r in edgy_run.truth:
        if r["outcome"] == "late":
            overrun = parse_time(r["closed_at"]) - parse_time(r["due_at"])
            assert 0 < overrun <= 20 * 86400


def test_edge_cases_are_exercised(edgy_run: Generated) -> None:
    """Boundary cases are present: closed exactly at the deadline, one second late, a
    notice at the same second as its change, and the earliest of two deaths counting."""
    events = {e["id"]: event_from_dict(e) for e in edgy_run.events}
    placed = {e.refs["order"]: e for e in events.values() if e.type == "order.placed"}
    turnaround = {"stat": 3600, "urgent": 4 * 3600, "routine": 72 * 3600}
    at_due = [
        e
        for e in events.values()
        if e.type == "result.reported"
        and e.time - placed[e.refs["order"]].time
        == turnaround[placed[e.refs["order"]].attrs["priority"]]
    ]
    exactly: Counter[tuple[str, str]] = Counter()
    for r in edgy_run.truth:
        if r["outcome"] == "late" and parse_time(r["closed_at"]) - parse_time(r["due_at"]) == 1:
            exactly["one-second-late", r["detector"]] += 1
    assert at_due
    assert {d for _, d in exactly} >= {
        "reschedule-notice",
        "result-overdue",
        "result-unacknowledged",
        "discharge-summary-overdue",
        "clinic-letter-overdue",
    }
    deaths = Counter(e.patient for e in events.values() if e.type == "patient.died")
    assert max(deaths.values()) == 2
    outcomes = Counter(r["outcome"] for r in edgy_run.truth if r["detector"] == "result-overdue")
    assert outcomes["void"] > 0 and outcomes["missed"] > 0
