"""Feed health: configuration, matching an event to its feed, watched hours, metrics."""

from __future__ import annotations

from datetime import datetime

import pytest
from prometheus_client import CollectorRegistry

from detectors.errors import ConfigError, RulesError
from detectors.events import Event
from detectors.feeds import FeedHealth, parse_feeds
from detectors.rules import parse_settings

RULES = """
metrics:
  site_labels: [north]
  feeds:
    pas-appointments:
      match: {type: "appointment.*", site: north, source: {message_type: "SIU^*"}}
      max_gap: 20m
      hours: "07:00-19:00"
      days: [mon, tue, wed, thu, fri]
      timezone: Europe/London
    lab:
      match: {type: [result.reported, order.placed]}
      max_gap: 1h
    night-ward:
      match: {type: encounter.discharged}
      hours: "22:00-06:00"
"""


def unix(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def event(etype: str, site: str | None = None, message_type: str | None = None) -> Event:
    return Event(
        id="e1",
        type=etype,
        time=unix("2026-03-02T09:00:00+00:00"),
        patient="P1",
        refs={},
        attrs={"site": site} if site else {},
        source={"format": "hl7v2", "message_type": message_type} if message_type else None,
    )


def test_feeds_come_from_the_rules_file() -> None:
    feeds = parse_settings(RULES).feeds
    assert [f.name for f in feeds] == ["pas-appointments", "lab", "night-ward"]
    assert feeds[0].max_gap == 1200.0 and feeds[0].site_label == "north"
    assert feeds[1].site_label == "all" and feeds[2].max_gap is None


def test_an_event_goes_to_the_first_feed_it_matches() -> None:
    health = FeedHealth(parse_settings(RULES).feeds, CollectorRegistry(), clock=lambda: 0.0)
    assert health.feed_of(event("appointment.booked", "north", "SIU^S12")) == "pas-appointments"
    assert health.feed_of(event("appointment.booked", "south", "SIU^S12")) == "other"
    assert health.feed_of(event("appointment.booked", "north", "ADT^A04")) == "other"
    assert health.feed_of(event("result.reported")) == "lab"
    assert health.feed_of(event("patient.died")) == "other"


def test_watched_hours_in_local_time_and_across_midnight() -> None:
    pas, _, night = parse_settings(RULES).feeds
    # Monday 30 March 2026 is after the clocks went forward: London is UTC+1
    assert pas.watched_since(unix("2026-03-30T06:30:00+00:00")) == unix("2026-03-30T06:00:00+00:00")
    assert pas.watched_since(unix("2026-03-30T05:30:00+00:00")) is None  # 06:30 local
    assert pas.watched_since(unix("2026-03-30T18:30:00+00:00")) is None  # 19:30 local
    assert pas.watched_since(unix("2026-03-28T10:00:00+00:00")) is None  # a Saturday
    assert night.watched_since(unix("2026-03-03T02:00:00+00:00")) == unix(
        "2026-03-02T22:00:00+00:00"
    )
    assert night.watched_since(unix("2026-03-03T12:00:00+00:00")) is None


def test_metrics_per_feed() -> None:
    now = [unix("2026-03-02T09:30:00+00:00")]  # a Monday, 09:30 in London (UTC+0)
    reg = CollectorRegistry()
    health = FeedHealth(parse_settings(RULES).feeds, reg, clock=lambda: now[0])
    get = reg.get_sample_value
    pas = {"feed": "pas-appointments", "site": "north"}
    # until the first event, "last received" is when watching began
    assert get("carewatch_feed_last_received_timestamp_seconds", pas) == now[0]
    assert get("carewatch_feed_last_event_timestamp_seconds", pas) is None
    now[0] += 60
    health.observe(event("appointment.booked", "north", "SIU^S12"))
    assert get("carewatch_feed_events_total", pas) == 1
    assert get("carewatch_feed_last_received_timestamp_seconds", pas) == now[0]
    assert get("carewatch_feed_last_event_timestamp_seconds", pas) == unix(
        "2026-03-02T09:00:00+00:00"
    )
    assert get("carewatch_feed_max_gap_seconds", pas) == 1200.0
    assert get("carewatch_feed_watched_since_timestamp_seconds", pas) == unix(
        "2026-03-02T07:00:00+00:00"
    )
    assert get("carewatch_feed_max_gap_seconds", {"feed": "night-ward", "site": "all"}) is None
    assert (
        get("carewatch_feed_watched_since_timestamp_seconds", {"feed": "night-ward", "site": "all"})
        is None
    )
    assert get("carewatch_feed_events_total", {"feed": "other", "site": "all"}) == 0


@pytest.mark.parametrize(
    ("conf", "words"),
    [
        ("[a]", "mapping"),
        ("{Bad Name: {}}", "lower-case"),
        ("{other: {}}", "lower-case"),
        ("{f: {max_gap: 20}}", "no unit"),
        ("{f: {hours: '7-19'}}", "HH:MM-HH:MM"),
        ("{f: {hours: '25:00-01:00'}}", "HH:MM-HH:MM"),
        ("{f: {days: [monday]}}", "days"),
        ("{f: {timezone: Mars/Olympus}}", "unknown timezone"),
        ("{f: {match: {colour: red}}}", "match takes"),
        ("{f: {gap: 1h}}", "unknown key"),
    ],
)
def test_bad_feed_settings_are_one_clear_error(conf: str, words: str) -> None:
    with pytest.raises(RulesError, match=words):
        parse_settings(f"metrics:\n  feeds: {conf}\n")


def test_parse_feeds_alone_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_feeds({"f": {"max_gap": "0s"}})


def test_each_bad_feed_is_named_at_the_line_of_the_value_at_fault() -> None:
    text = (
        "metrics:\n"  # 1
        "  feeds:\n"  # 2
        "    lab:\n"  # 3
        "      match:\n"  # 4
        "        type: [result.*, '']\n"  # 5
        "      max_gap: 2h\n"  # 6
        "    pas:\n"  # 7
        "      max_gap: 0s\n"  # 8
        "    wards:\n"  # 9
        "      days: [monday]\n"  # 10
        "    Bad Name: {}\n"  # 11
    )
    with pytest.raises(RulesError) as caught:
        parse_settings(text, "rules.yaml")
    lines = str(caught.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        "rules.yaml:5",
        "rules.yaml:8",
        "rules.yaml:10",
        "rules.yaml:11",
    ]
    assert "feed 'lab' match.type" in lines[0] and "max_gap must be more than 0" in lines[1]
