"""Worker metrics (summed over partitions, on an injected registry) and tail's lines."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from detectors.rules import load_settings
from streams.kafka.metrics import WorkerMetrics
from streams.kafka.partitions import PatientPartition
from streams.kafka.tail import format_record
from tests.detectors.helpers import at


def order(eid: str, patient: str, hours: float) -> bytes:
    return orjson.dumps(
        {
            "id": eid,
            "type": "order.placed",
            "time": at(hours),
            "patient": patient,
            "refs": {"order": f"O-{eid}"},
            "attrs": {"priority": "stat"},
        }
    )


def test_metrics_add_up_over_partitions() -> None:
    settings = load_settings(None)
    parts = [
        PatientPartition(p, settings, allowed_lateness=600.0, session_partitions=2)
        for p in range(2)
    ]
    registry = CollectorRegistry()
    metrics = WorkerMetrics(
        registry,
        lambda: parts,
        [d.name for d in settings.detectors],
        lambda: {"ev[0]": 7},
        uncommitted=lambda: {"ev[0]": 3},
    )
    metrics.attach()
    for p, st in enumerate(parts):
        st.begin_batch()
        st.handle_event(0, b"k", order(f"e{p}", f"P{p}", 0))
        st.handle_event(1, b"k", order(f"f{p}", f"P{p}", 5))  # moves the watermark past due
        st.handle_event(2, b"k", b"not json")
        st.end_batch()
    metrics.attach()
    value = registry.get_sample_value
    assert value("carewatch_events_total", {"type": "order.placed"}) == 4
    assert (
        value(
            "carewatch_outcomes_total",
            {"detector": "result-overdue", "outcome": "missed", "site": "other"},
        )
        == 2
    )
    assert value("carewatch_rejected_inputs_total", {"reason": "invalid"}) == 2
    assert value("carewatch_kafka_lag_messages", {"partition": "ev[0]"}) == 7
    assert value("carewatch_kafka_uncommitted_messages", {"partition": "ev[0]"}) == 3
    assert value("carewatch_failure_overdue_seconds_count", {"detector": "result-overdue"}) == 2


def test_tail_lines() -> None:
    rec = {
        "failure_id": "abc",
        "detector": "result-overdue",
        "status": "missed",
        "detected_at": "2026-03-02T10:00:00+00:00",
        "summary": "A result was due.",
    }
    line = format_record("failures", b"abc", orjson.dumps(rec))
    assert line == "2026-03-02T10:00:00+00:00  result-overdue  missed  abc  A result was due."
    rej = {"origin": "carewatch.events", "location": "0:5", "kind": "invalid", "reason": "bad"}
    assert (
        format_record("rejected", None, orjson.dumps(rej)) == "carewatch.events:0:5  invalid  bad"
    )
    assert format_record("outcomes", None, b"garbage").startswith("(not JSON)")
