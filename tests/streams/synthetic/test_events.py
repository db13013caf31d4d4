"""Every generated event honours the canonical event contract and looks like a hospital."""

from __future__ import annotations

import re
from collections import Counter

from detectors.events import BUILTIN_TYPES, event_from_dict, parse_time
from streams.synthetic import Generated


def test_every_event_is_valid_and_sorted(small_week: Generated) -> None:
    previous = (0.0, "")
    ids = set()
    for obj in small_week.events:
        e = event_from_dict(obj)
        assert e.type in BUILTIN_TYPES
        assert obj["time"].endswith("+00:00")
        assert (e.time, e.id) > previous
        previous = (e.time, e.id)
        assert e.id not in ids
        ids.add(e.id)
        for name in ("start", "previous_start"):
            if name in e.attrs:
                assert e.attrs[name].endswith("+00:00")
                parse_time(e.attrs[name])


def test_identifiers_are_synthetic(small_week: Generated) -> None:
    patterns = {
        "appointment": r"A\d{8}",
        "order": r"O\d{8}",
        "encounter": r"V\d{8}",
        "document": r"D\d{9}",
        "session": r"S-[A-Z]+-\d+-\d{8}-(AM|PM)",
    }
    for e in small_week.events:
        assert re.fullmatch(r"E\d{9}", e["id"])
        if e["type"] == "session.capacity":
            assert "patient" not in e
        else:
            assert re.fullmatch(r"P\d{7}", e["patient"])
        for kind, value in e["refs"].items():
            assert re.fullmatch(patterns[kind], value), (kind, value)


def test_opening_events_carry_their_key_and_slicing_attrs(small_week: Generated) -> None:
    for e in small_week.events:
        if e["type"] in ("appointment.booked", "appointment.rescheduled", "appointment.attended"):
            assert {"clinic", "specialty", "site"} <= set(e["attrs"])
        if e["type"] in ("appointment.booked", "appointment.rescheduled"):
            assert "session" in e["refs"]
        if e["type"] == "order.placed":
            assert {"test", "priority", "site"} <= set(e["attrs"])
        if e["type"] == "document.sent":
            assert e["attrs"]["kind"] in (
                "clinic-letter",
                "discharge-summary",
                "appointment-letter",
            )
    kinds = Counter(e["type"] for e in small_week.events)
    assert set(kinds) == BUILTIN_TYPES


def test_public_api_is_declared() -> None:
    import streams.synthetic as api

    assert set(api.__all__) == {
        "DEFAULT_START",
        "FAILURE_PRESETS",
        "SCALES",
        "DeliveryFaults",
        "FailureRates",
        "Generated",
        "GeneratorConfig",
        "deliver",
        "failure_id",
        "generate",
        "generate_events",
    }
    for name in api.__all__:
        assert getattr(api, name) is not None
