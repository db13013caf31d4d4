"""The worklist's metrics: open failures by detector and site come from the store (a
person's resolution and Carewatch's own closing take a failure off), labels are bounded
by configuration, and ``promtool check metrics`` accepts the exposition."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.store import open_store, parse_failure
from streams.store.metrics import WorklistMetrics
from tests.deploy.tools import check_metrics
from tests.streams.store.support import T0, line, record

DETECTORS = ["reschedule-notice", "result-overdue"]
OPEN = "carewatch_worklist_open_failures"
FREE = "carewatch_worklist_unassigned_failures"
OLDEST = "carewatch_worklist_oldest_open_due_timestamp_seconds"
OLDEST_FREE = "carewatch_worklist_oldest_unassigned_due_timestamp_seconds"


def value(registry: CollectorRegistry, name: str, detector: str, site: str) -> float | None:
    return registry.get_sample_value(name, {"detector": detector, "site": site})


def test_open_failures_by_detector_and_site_come_from_the_store(store_url: str) -> None:
    store = open_store(store_url, create=True)
    store.add_user("ann", "coordinator", "ann's long password")
    rows = [
        record(1, site="north"),  # open, untaken
        record(2, site="north"),  # taken by ann below
        record(3, site="north"),  # resolved by ann: not open
        record(4, site="south"),  # Carewatch closes it (missed, then late)
        record(5, site="elsewhere"),  # a site not configured: "other"
        record(6, detector="result-overdue", site="north", due=T0 - 7200.0),
        record(7, detector="home-rule", site="north"),  # a detector not configured
    ]
    store.upsert([parse_failure(line(r)) for r in rows])
    ann = store.user("ann")
    assert ann is not None
    store.act(ann, "f000002", "take", 1)
    store.act(ann, "f000003", "resolve", 1, reason="patient-contacted")
    store.upsert([parse_failure(line(record(4, "late", site="south")))])

    registry = CollectorRegistry()
    WorklistMetrics(store, registry, DETECTORS, ["north", "south"])
    assert registry.get_sample_value("carewatch_worklist_store_up") == 1
    assert value(registry, OPEN, "reschedule-notice", "north") == 2
    assert value(registry, FREE, "reschedule-notice", "north") == 1
    assert value(registry, OPEN, "reschedule-notice", "south") == 0  # closed by Carewatch
    assert value(registry, OPEN, "reschedule-notice", "other") == 1
    assert value(registry, OPEN, "result-overdue", "north") == 1
    assert value(registry, OPEN, "result-overdue", "south") == 0  # served as 0, not absent
    assert value(registry, OPEN, "other", "north") == 1
    assert value(registry, OPEN, "result-overdue", "other") is None  # nothing falls there
    # the most overdue open one: f000001's deadline (T0 + 60 s); untaken: the same
    assert value(registry, OLDEST, "reschedule-notice", "north") == T0 + 60.0
    assert value(registry, OLDEST_FREE, "reschedule-notice", "north") == T0 + 60.0
    assert value(registry, OLDEST, "result-overdue", "north") == T0 - 7200.0
    assert value(registry, OLDEST, "reschedule-notice", "south") is None

    # taking f000001 leaves only the taken ones: nothing untaken at north
    store.act(ann, "f000001", "take", 1)
    assert value(registry, FREE, "reschedule-notice", "north") == 0
    assert value(registry, OLDEST_FREE, "reschedule-notice", "north") is None
    assert value(registry, OLDEST, "reschedule-notice", "north") == T0 + 60.0

    text = generate_latest(registry).decode()
    check_metrics(text)
    for r in rows:  # no patient or reference id in any label
        assert r["patient"] not in text and r["refs"]["appointment"] not in text
    assert "elsewhere" not in text and "home-rule" not in text
    store.close()


def test_a_store_it_cannot_read_is_reported_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    store = open_store(str(path), create=True)
    with store.db.transaction() as conn:
        conn.execute("DROP TABLE failures")
    registry = CollectorRegistry()
    WorklistMetrics(store, registry, DETECTORS, ["north"])  # registering reads nothing
    assert not caplog.records
    assert registry.get_sample_value("carewatch_worklist_store_up") == 0
    assert value(registry, OPEN, "result-overdue", "north") is None
    check_metrics(generate_latest(registry).decode())
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("cannot read the store for metrics")
    store.close()
