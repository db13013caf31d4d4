"""Engine metrics: read back through a fresh registry; labels stay bounded and never
carry patient identifiers or free text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from detectors.engine import Engine
from detectors.events import BUILTIN_TYPES
from detectors.metrics import SEVERITIES, EngineMetrics
from detectors.rules import parse_settings
from detectors.testing import ev
from tests.detectors.helpers import at, epoch

PATIENT = "P9876543210"
FREE_TEXT = "Mrs Jane Example, Ward 7"


def build(
    site_labels: tuple[str, ...] = ("north",),
) -> tuple[Engine, EngineMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    engine = Engine(parse_settings("").detectors, site_labels=site_labels)
    metrics = EngineMetrics(engine, registry, clock=lambda: epoch(10))
    return engine, metrics, registry


def test_counts_read_back() -> None:
    engine, metrics, reg = build()
    e1 = ev(
        "order.placed", at(0), refs={"order": "O1"}, attrs={"priority": "stat", "site": "north"}
    )
    engine.process(e1)
    engine.process(e1)  # duplicate
    engine.process(ev("order.placed", at(0), refs={"order": "O2"}, attrs={"priority": "stat"}))
    engine.process(ev("something.custom", at(3)))
    metrics.count_rejected("invalid")
    metrics.count_rejected("a reason nobody declared")

    get = reg.get_sample_value
    assert get("carewatch_events_total", {"type": "order.placed"}) == 2
    assert get("carewatch_events_total", {"type": "other"}) == 1
    assert get("carewatch_duplicate_events_total") == 1
    labels = {"detector": "result-overdue", "outcome": "missed"}
    assert get("carewatch_outcomes_total", {**labels, "site": "north"}) == 1
    assert get("carewatch_outcomes_total", {**labels, "site": "other"}) == 1
    assert get("carewatch_open_expectations", {"detector": "result-overdue"}) == 0
    assert get("carewatch_watermark_timestamp_seconds") == epoch(3) - 600
    assert get("carewatch_watermark_lag_seconds") == epoch(10) - (epoch(3) - 600)
    assert get("carewatch_rejected_inputs_total", {"reason": "invalid"}) == 1
    assert get("carewatch_rejected_inputs_total", {"reason": "other"}) == 1
    # both stat orders were ~1h50m overdue when declared: the 4h bucket holds them
    assert get("carewatch_failure_overdue_seconds_count", {"detector": "result-overdue"}) == 2
    assert (
        get(
            "carewatch_failure_overdue_seconds_bucket",
            {"detector": "result-overdue", "le": "3600.0"},
        )
        == 0
    )
    assert (
        get(
            "carewatch_failure_overdue_seconds_bucket",
            {"detector": "result-overdue", "le": "14400.0"},
        )
        == 2
    )


def test_no_patient_identifier_or_free_text_can_become_a_label() -> None:
    engine, metrics, reg = build(site_labels=("north", "south"))
    # Put identifiers and free text everywhere a label could come from.
    hostile = {
        "site": PATIENT,
        "clinic": FREE_TEXT,
        "specialty": PATIENT,
        "test": FREE_TEXT,
        "priority": PATIENT,
        "kind": PATIENT,
        "initiated_by": "hospital",
    }
    for i, etype in enumerate(
        [
            "order.placed",
            "appointment.rescheduled",
            "encounter.discharged",
            "patient.died",
            "appointment.booked",
            PATIENT,
            FREE_TEXT,
        ]
    ):
        engine.process(
            ev(
                etype,
                at(i),
                patient=PATIENT,
                refs={
                    "order": PATIENT,
                    "appointment": PATIENT,
                    "encounter": PATIENT,
                    "session": PATIENT,
                },
                attrs=hostile,
                id=f"{PATIENT}-{i}",
            )
        )
    engine.advance_to(epoch(days=60))
    metrics.count_rejected(FREE_TEXT)
    metrics.count_rejected(PATIENT)

    exposition = generate_latest(reg).decode()
    assert "carewatch_outcomes_total" in exposition  # something was counted
    assert PATIENT not in exposition
    assert "Jane" not in exposition and "Ward" not in exposition
    for metric in reg.collect():
        for sample in metric.samples:
            for name, value in sample.labels.items():
                allowed = {"type", "detector", "outcome", "site", "reason", "le", "severity"}
                allowed |= {"from", "to", "version", "build"}
                assert name in allowed, name
                if name == "site":
                    assert value in {"north", "south", "other"}
                if name == "type":
                    assert value in engine.known_types | BUILTIN_TYPES | {"other"}
                if name == "severity":
                    assert value in SEVERITIES | {"other"}
                if name == "reason":
                    assert value in {"invalid", "unsupported", "no-event", "too-large", "other"}


def test_every_builtin_type_is_counted_under_its_own_name() -> None:
    engine, _, reg = build()
    # no built-in detector reads appointment.missed; it is still a known type
    engine.process(ev("appointment.missed", at(0), refs={"appointment": "A1"}))
    engine.process(ev("my.custom.thing", at(1)))
    get = reg.get_sample_value
    assert get("carewatch_events_total", {"type": "appointment.missed"}) == 1
    assert get("carewatch_events_total", {"type": "other"}) == 1


def test_an_amended_failure_is_counted_once_and_its_amendment_apart() -> None:
    engine, _, reg = build()
    attrs = {"priority": "stat", "site": "north"}
    engine.process(ev("order.placed", at(0), refs={"order": "O1"}, attrs=attrs))
    engine.advance_to(epoch(3))  # past the 1 h deadline: missed
    # the result turns up later (beyond the lateness, within the retention): late
    engine.process(ev("result.reported", at(2), refs={"order": "O1"}))
    engine.advance_to(epoch(4))
    get = reg.get_sample_value
    base = {"detector": "result-overdue", "site": "north"}
    assert get("carewatch_outcomes_total", {**base, "outcome": "missed"}) == 1
    assert get("carewatch_outcomes_total", {**base, "outcome": "late"}) is None
    assert get("carewatch_outcome_amendments_total", {**base, "from": "missed", "to": "late"}) == 1
    # the overdue histogram and the failures counter saw the failure once
    assert get("carewatch_failure_overdue_seconds_count", {"detector": "result-overdue"}) == 1
    failures = {"detector": "result-overdue", "outcome": "missed", "severity": "stat"}
    failures["site"] = "north"
    assert get("carewatch_failures_total", failures) == 1
    assert get("carewatch_failures_total", {**failures, "outcome": "late"}) is None


def test_build_info_names_version_and_build() -> None:
    _, _, reg = build()
    samples = [s for m in reg.collect() for s in m.samples if s.name == "carewatch_build_info"]
    assert len(samples) == 1
    assert samples[0].value == 1
    assert samples[0].labels["build"] in {"pure", "compiled"}
    assert samples[0].labels["version"]
