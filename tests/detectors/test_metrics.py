"""Engine metrics: read back through a fresh registry; labels stay bounded and never
carry patient identifiers or free text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from detectors.engine import Engine
from detectors.metrics import EngineMetrics
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
    assert get("carewatch_watermark_seconds") == epoch(3) - 600
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
                assert name in {"type", "detector", "outcome", "site", "reason", "le"}, name
                if name == "site":
                    assert value in {"north", "south", "other"}
                if name == "type":
                    assert value in engine.known_types | {"other"}
                if name == "reason":
                    assert value in {"invalid", "unsupported", "no-event", "too-large", "other"}
