"""Durations as people write them, and the ones refused."""

from __future__ import annotations

import pytest

from detectors.durations import format_duration, parse_duration
from detectors.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("48h", 172800.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        (" 1h 30m ", 5400.0),
        ("0", 0.0),
        (0, 0.0),
        (0.0, 0.0),
    ],
)
def test_durations_people_write(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("24", "has no unit; write e.g. 24s, 24m, 24h or 24d"),
        (24, "has no unit"),  # what YAML gives for `within: 24`
        (1.5, "has no unit"),
        ("-5", "negative"),
        ("soon", "not a duration"),
        ("10x", "not a duration"),
        ("", "not a duration"),
        (True, "not a duration"),
    ],
)
def test_a_number_without_a_unit_and_nonsense_are_refused(value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_duration(value)  # type: ignore[arg-type]


def test_durations_read_back_for_people() -> None:
    assert [format_duration(s) for s in (12, 2700, 5400, 186000)] == [
        "12s",
        "45m",
        "1h 30m",
        "2d 3h",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("+5", "duration '+5' has no unit; write e.g. 5s, 5m, 5h or 5d"),
        (1e-09, "duration 1e-09 has no unit; write e.g. 30s, 30m, 30h or 30d"),
        (float("inf"), "inf is not a duration"),
        (float("nan"), "nan is not a duration"),
    ],
)
def test_the_hint_never_suggests_what_is_refused(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(err.value).startswith(message)
    hint = str(err.value).rpartition("e.g. ")[2].split(",")[0]
    if "has no unit" in message:
        assert parse_duration(hint) > 0
