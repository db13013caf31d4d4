"""Changes, targets and provisional periods on the way from measures to charts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from detectors.errors import ConfigError
from streams.qi.series import (
    Change,
    Target,
    build_charts,
    load_changes,
    parse_change,
    parse_target,
)


def weekly(values: list[float], n: int = 100, *, complete_last: bool = True) -> pd.DataFrame:
    starts = pd.date_range("2026-01-05", periods=len(values), freq="7D", tz="Europe/London")
    failures = [round(v * n) for v in values]
    return pd.DataFrame(
        {
            "detector": "result-overdue",
            "site": ["north"] * len(values),
            "period_start": starts,
            "period_end": starts + pd.Timedelta(days=7),
            "measure": "proportion",
            "opportunities": pd.array([n] * len(values), dtype="Int64"),
            "violations": 0,
            "failures": failures,
            "failure_proportion": [f / n for f in failures],
            "open": 0,
            "complete": [True] * (len(values) - 1) + [complete_last],
            "small": False,
        }
    )


def test_changes_parse_and_scope() -> None:
    assert parse_change("2026-03-01:SMS reminders") == Change(date(2026, 3, 1), "SMS reminders")
    assert parse_change("2026-03-01").label == "change 2026-03-01"
    scoped = Change(date(2026, 3, 1), "x", (("site", "north"),))
    assert scoped.applies_to({"detector": "a", "site": "north"})
    assert not scoped.applies_to({"detector": "a", "site": "south"})
    assert not scoped.applies_to({"detector": "a"})  # a series not split by site


def test_changes_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("changes:\n  - date: 2026-03-01\n    label: SMS\n    site: north\n")
    assert load_changes(path) == [Change(date(2026, 3, 1), "SMS", (("site", "north"),))]
    for text, message in (
        ("- 1\n", "expected `changes:`"),
        ("changes:\n  - label: x\n", "change 1 needs a `date:`"),
        ("changes:\n  - date: March\n", "is not YYYY-MM-DD"),
        ("changes:\n  - date: 2026-03-01\n    ward: 7\n", "unknown setting 'ward'"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_changes(path)
    with pytest.raises(ConfigError, match="cannot read changes file"):
        load_changes(tmp_path / "missing.yaml")


def test_targets() -> None:
    assert parse_target("result-overdue=5%") == ("result-overdue", Target(0.05, percent=True))
    assert parse_target("contact-after-death = 0") == ("contact-after-death", Target(0.0, False))
    with pytest.raises(ConfigError):
        parse_target("5%")


def test_a_scoped_change_rebases_only_its_series() -> None:
    table = pd.concat(
        [weekly([0.1, 0.12] * 8), weekly([0.1, 0.12] * 8).assign(site="south")],
        ignore_index=True,
    )
    change = Change(date(2026, 2, 4), "courier", (("site", "north"),))  # a Wednesday
    north, south = build_charts(table, by=["site"], changes=[change])
    assert north.points["segment"].tolist() == [0] * 5 + [1] * 11  # from Monday 9 Feb
    assert north.changes[0][0] == pd.Timestamp("2026-02-09", tz="Europe/London")
    assert set(south.points["segment"]) == {0} and south.changes == []


def test_a_provisional_last_period_is_drawn_but_not_used() -> None:
    chart = build_charts(weekly([0.1, 0.12] * 8 + [0.9], complete_last=False))[0]
    last = chart.points.iloc[-1]
    assert bool(last["provisional"]) and last["rule"] == "" and pd.isna(last["centre"])
    assert chart.summary is not None and chart.summary.latest == pytest.approx(0.12)
    assert chart.summary.variation == "common cause"
