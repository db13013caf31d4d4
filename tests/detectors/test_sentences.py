"""The sentences people read: whole, in the site's local time, naming what a
coordinator needs to find the case."""

from __future__ import annotations

import orjson
import pytest

from detectors.errors import RulesError
from detectors.events import Event, event_from_dict
from detectors.rules import parse_settings
from detectors.testing import run_events


def _events(*objs: dict[str, object]) -> list[Event]:
    return [event_from_dict(orjson.loads(orjson.dumps(o))) for o in objs]


ORDER = {
    "id": "o1",
    "type": "order.placed",
    "time": "2026-07-02T08:00:00Z",  # summer: 09:00 in London (BST)
    "patient": "P1",
    "refs": {"order": "O1"},
    "attrs": {"test": "FBC", "priority": "urgent", "clinic": "Haematology"},
}


def _summary(rules: str, *objs: dict[str, object]) -> str:
    run = run_events(_events(*objs), rules=rules, as_of="2026-08-01T00:00:00Z")
    [record] = [o for o in run.latest.values() if o.detector == "result-overdue"]
    return record.summary


def test_a_failure_names_the_test_its_priority_and_the_clinic_in_local_time() -> None:
    text = _summary("", ORDER)
    assert text.startswith("Order O1 was placed (FBC, urgent; clinic Haematology) at ")
    assert "Thu 02 Jul 2026 09:00 BST" in text and "UTC" not in text


def test_winter_times_are_gmt_and_a_site_timezone_is_used() -> None:
    winter = {**ORDER, "time": "2026-01-12T08:00:00Z"}
    assert "Mon 12 Jan 2026 08:00 GMT" in _summary("", winter)
    new_york = _summary("timezone: America/New_York\n", winter)
    assert "Mon 12 Jan 2026 03:00 EST" in new_york


def test_an_unknown_timezone_is_refused_with_its_line() -> None:
    with pytest.raises(RulesError) as err:
        parse_settings("engine:\n  allowed_lateness: 10m\ntimezone: Europe/Londn\n", "site.yaml")
    assert "site.yaml:3" in str(err.value) and "Europe/Londn" in str(err.value)


@pytest.mark.parametrize(
    ("closing", "ending"),
    [
        ({"id": "r1", "type": "result.reported", "time": "2026-07-02T08:30:00Z"}, "came in time."),
        ({"id": "c1", "type": "order.cancelled", "time": "2026-07-02T08:30:00Z"}, "(voided)."),
    ],
)
def test_met_and_void_sentences_are_whole_sentences(
    closing: dict[str, object], ending: str
) -> None:
    close = {**closing, "patient": "P1", "refs": {"order": "O1"}}
    text = _summary("", ORDER, close)
    assert (
        text
        == f"Order O1 was placed; its result {ending.replace('(voided)', 'is no longer expected (voided)')}"
    )


def test_an_open_sentence_is_a_whole_sentence() -> None:
    run = run_events(_events(ORDER), as_of="2026-07-02T08:05:00Z")
    [record] = [o for o in run.open if o.detector == "result-overdue"]
    assert record.summary == "Order O1 was placed; its result is not due yet."
