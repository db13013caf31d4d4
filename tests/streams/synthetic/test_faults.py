"""Delivery faults keep the truth: events stay within the bound, copies are the same
event, malformed lines are not events."""

from __future__ import annotations

import orjson
import pytest

from detectors.errors import EventError
from detectors.events import event_from_dict, parse_time
from streams.synthetic import DeliveryFaults, Generated, deliver
from streams.synthetic.faults import DUPLICATE_BOUND
from tests.streams.synthetic.reference import reference_outcomes


def _parse(line: bytes) -> dict | None:
    """The event on ``line``, or None when the line is not a valid event."""
    try:
        obj = orjson.loads(line)
        event_from_dict(obj)
    except (orjson.JSONDecodeError, EventError):
        return None
    return obj


def _max_lag(events: list[dict]) -> float:
    highest = float("-inf")
    lag = 0.0
    for e in events:
        t = parse_time(e["time"])
        highest = max(highest, t)
        lag = max(lag, highest - t)
    return lag


def test_no_faults_is_the_sorted_stream(small_week: Generated) -> None:
    lines = list(deliver(small_week.records, DeliveryFaults(), seed=1))
    assert [orjson.loads(x) for x in lines] == small_week.events
    assert all(x.endswith(b"\n") and x.count(b"\n") == 1 for x in lines)


@pytest.mark.parametrize("bound", [60.0, 600.0, 3600.0])
def test_shuffle_stays_within_the_bound(small_week: Generated, bound: float) -> None:
    lines = list(deliver(small_week.records, DeliveryFaults(shuffle_within=bound), seed=4))
    events = [orjson.loads(x) for x in lines]
    assert sorted(e["id"] for e in events) == sorted(e["id"] for e in small_week.events)
    assert events != small_week.events  # something did move
    assert 0 < _max_lag(events) <= bound


def test_duplicates_keep_id_and_content_and_come_later(small_week: Generated) -> None:
    faults = DeliveryFaults(duplicates=0.05)
    events = [orjson.loads(x) for x in deliver(small_week.records, faults, seed=2)]
    n = len(small_week.events)
    assert len(events) == n + round(0.05 * n)
    seen: dict[str, dict] = {}
    repeats = 0
    for e in events:
        if e["id"] in seen:
            assert e == seen[e["id"]]
            repeats += 1
        seen[e["id"]] = e
    assert repeats == round(0.05 * n)
    assert _max_lag(events) <= DUPLICATE_BOUND


def test_all_faults_together_keep_the_truth(small_week: Generated) -> None:
    faults = DeliveryFaults(shuffle_within=300.0, duplicates=0.02, malformed=0.01)
    lines = list(deliver(small_week.records, faults, seed=9))
    parsed = [_parse(x) for x in lines]
    valid = [e for e in parsed if e is not None]
    bad = len(parsed) - len(valid)
    n = len(small_week.events)
    assert bad == round(0.01 * n)
    assert _max_lag(valid) <= 300.0
    assert {e["id"] for e in valid} == {e["id"] for e in small_week.events}
    assert reference_outcomes(valid) == small_week.truth


def test_malformed_lines_are_not_events_and_share_no_id(small_week: Generated) -> None:
    faults = DeliveryFaults(malformed=0.2)
    lines = list(deliver(small_week.records, faults, seed=3))
    real_ids = {e["id"] for e in small_week.events}
    bad = [x for x in lines if _parse(x) is None]
    assert len(bad) == round(0.2 * len(small_week.events))
    kinds = set()
    for line in bad:
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            kinds.add("not-json")
            continue
        if isinstance(obj, dict):
            assert obj.get("id") not in real_ids
            kinds.add("bad-object")
        else:
            kinds.add("not-an-object")
    assert kinds == {"not-json", "bad-object", "not-an-object"}
