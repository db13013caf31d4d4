"""Measures: periods in the site's local time, counts, and the marks on partial periods."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from detectors.errors import ConfigError
from streams.qi.ledger import read_ledger
from streams.qi.measures import measure_table, parse_by
from tests.streams.qi.helpers import fid, record, write_ledger


def table(tmp_path: Path, records: list[dict], **kw: object) -> pd.DataFrame:
    return measure_table(read_ledger([write_ledger(tmp_path / "l.jsonl", records)]), **kw)  # type: ignore[arg-type]


def test_weeks_start_on_monday_in_local_time(tmp_path: Path) -> None:
    recs = [
        # Sunday 29 March 2026 23:30 UTC is Monday 00:30 in London (BST): next week
        record(fid(1), "met", "2026-03-29T23:30:00+00:00"),
        # Sunday 22:30 UTC is Sunday 23:30 BST: still the week of Monday 23 March
        record(fid(2), "missed", "2026-03-29T22:30:00+00:00"),
        record(fid(3), "met", "2026-04-20T00:00:00+00:00", detected="2026-05-01T00:00:00+00:00"),
    ]
    t = table(tmp_path, recs)
    starts = [s.isoformat() for s in t["period_start"]]
    assert starts == [
        "2026-03-23T00:00:00+00:00",
        "2026-03-30T00:00:00+01:00",  # clocks went forward on the 29th
        "2026-04-20T00:00:00+01:00",
    ]
    assert t["period_end"].iloc[0].isoformat() == "2026-03-30T00:00:00+01:00"
    assert t["failures"].tolist() == [1, 0, 0]
    # in UTC the same two records fall in one week
    utc = table(tmp_path, recs, tz="UTC")
    assert utc["period_start"].iloc[0].isoformat() == "2026-03-23T00:00:00+00:00"
    assert utc["opportunities"].iloc[0] == 2


def test_counts_proportions_and_void(tmp_path: Path) -> None:
    due = "2026-03-03T10:00:00+00:00"
    recs = [
        *(record(fid(i), "met", due) for i in range(6)),
        record(fid(10), "late", due, amended_from="missed"),
        record(fid(11), "missed", due),
        record(fid(12), "void", due),
        record(fid(13), "open", due),
    ]
    later = record(fid(20), "met", "2026-03-20T00:00:00+00:00")
    t = table(tmp_path, [*recs, later])
    row = t.iloc[0]
    assert (row["opportunities"], row["met"], row["late"], row["missed"], row["void"]) == (
        8,
        6,
        1,
        1,
        1,
    )
    assert row["failures"] == 2 and row["failure_proportion"] == pytest.approx(0.25)
    assert row["open"] == 1 and bool(row["small"]) and bool(row["complete"])


def test_the_last_period_past_the_horizon_is_not_complete(tmp_path: Path) -> None:
    recs = [
        record(fid(1), "met", "2026-03-02T10:00:00+00:00"),
        record(fid(2), "met", "2026-03-10T10:00:00+00:00"),  # horizon: Tuesday 10 March
    ]
    t = table(tmp_path, recs)
    assert t["complete"].tolist() == [True, False]
    assert t["small"].tolist() == [True, True]


def test_a_violation_only_detector_is_a_count_with_zero_weeks(tmp_path: Path) -> None:
    death = {"detector": "contact-after-death", "site": None}
    recs = [
        record(fid(1), "violation", None, opened="2026-03-03T10:00:00+00:00", **death),  # type: ignore[arg-type]
        record(fid(2), "violation", None, opened="2026-03-24T10:00:00+00:00", **death),  # type: ignore[arg-type]
        record(fid(3), "met", "2026-03-12T10:00:00+00:00"),
        # clinic-overbooked records met sessions too: a proportion
        record(fid(4), "met", "2026-03-03T10:00:00+00:00", detector="clinic-overbooked"),
        record(fid(5), "violation", "2026-03-03T11:00:00+00:00", detector="clinic-overbooked"),
    ]
    t = table(tmp_path, recs, by=["site"])
    deaths = t[t["detector"] == "contact-after-death"]
    assert deaths["violations"].tolist() == [1, 0, 0, 1]
    assert set(deaths["measure"]) == {"count"} and deaths["opportunities"].isna().all()
    assert set(deaths["site"]) == {"(not recorded)"}
    booked = t[t["detector"] == "clinic-overbooked"].iloc[0]
    assert booked["measure"] == "proportion" and booked["failure_proportion"] == 0.5


def test_by_site_and_month(tmp_path: Path) -> None:
    recs = [
        record(fid(1), "met", "2026-03-31T23:30:00+00:00", site="north"),  # 1 April, BST
        record(fid(2), "missed", "2026-03-31T22:30:00+00:00", site="south"),
        record(fid(3), "met", "2026-03-01T00:30:00+00:00", site="south"),
    ]
    t = table(tmp_path, recs, by=["site"], period="month")
    got = [(r.site, r.period_start.strftime("%Y-%m"), r.opportunities) for r in t.itertuples()]
    assert got == [("north", "2026-04", 1), ("south", "2026-03", 2)]


def test_by_fields_and_timezones_are_checked(tmp_path: Path) -> None:
    assert parse_by("site, clinic") == ("site", "clinic")
    with pytest.raises(ConfigError, match="--by ward"):
        parse_by("ward")
    with pytest.raises(ConfigError, match="unknown timezone 'Mars/Olympus'"):
        table(tmp_path, [record(fid(1), "met", "2026-03-02T10:00:00Z")], tz="Mars/Olympus")


@pytest.mark.parametrize("by", [(), ("site",)])
def test_a_detector_whose_records_were_all_superseded_leaves_no_trace(
    tmp_path: Path, by: tuple[str, ...]
) -> None:
    # found by the property test: the superseded detector stayed a category of the
    # ledger, and the count measure's zero-filling then failed on it (KeyError)
    seen = "2026-03-01T00:00:00+00:00"
    recs = [
        record(
            fid(1), "met", "2026-02-01T00:00:00+00:00", detector="clinic-overbooked", detected=seen
        ),
        record(
            fid(1),
            "violation",
            None,
            detector="contact-after-death",
            opened="2026-02-03T00:00:00+00:00",
            detected=seen,
            site="south",
        ),
    ]
    t = table(tmp_path, recs, period="day", by=by)
    assert t["detector"].tolist() == ["contact-after-death"]
    assert t["violations"].tolist() == [1]


def test_a_measure_is_what_its_detector_declares() -> None:
    from typing import ClassVar

    from detectors.builtin import BUILTINS
    from detectors.contract import ViolationDetector
    from streams.qi.measures import measure_kinds

    class Quiet(ViolationDetector):
        name: ClassVar[str] = "quiet"
        reads = frozenset({"appointment.booked"})

        def on_event(self, event: object, ctx: object) -> None: ...
        def snapshot(self) -> dict[str, object]:
            return {}

        def restore(self, state: object) -> None: ...

    class Watched(Quiet):
        name: ClassVar[str] = "watched"
        measure: ClassVar[str] = "proportion"

    kinds, unknown = measure_kinds([*BUILTINS, "quiet", "watched", "nobody"], [Quiet(), Watched()])
    assert kinds == {
        "reschedule-notice": "proportion",
        "result-overdue": "proportion",
        "result-unacknowledged": "proportion",
        "discharge-summary-overdue": "proportion",
        "clinic-letter-overdue": "proportion",
        "clinic-overbooked": "proportion",
        "contact-after-death": "count",
        "quiet": "count",
        "watched": "proportion",
    }
    assert unknown == ["nobody"]
