"""Every `carewatch qi` command on a ledger with nothing to chart yet: no records, only
open opportunities, or only violations. Each gives a clear result and exit code 0, never
a traceback; a table written to a file keeps its header. Then the same commands over
small random ledgers (hypothesis): they never fail, and their tables agree with the
records."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.cli import main
from streams.qi.measures import COLUMNS
from streams.qi.series import POINT_COLUMNS, SUMMARY_COLUMNS
from tests.streams.qi.helpers import fid, record, write_ledger

KEY = "0123456789abcdef0123456789abcdef"

LEDGERS = {
    "empty": [],
    "all open": [
        record(fid(1), "open", "2026-03-03T10:00:00+00:00", detected="2026-03-01T00:00:00+00:00"),
        record(fid(2), "open", "2026-03-10T10:00:00+00:00", detected="2026-03-01T00:00:00+00:00"),
    ],
    "violations only": [
        record(
            fid(i),
            "violation",
            None,
            detector="contact-after-death",
            opened=f"2026-03-{day:02d}T10:00:00+00:00",
            detected="2026-03-30T00:00:00+00:00",
        )
        for i, day in enumerate((2, 3, 17), 1)
    ],
}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREWATCH_PSEUDONYM_KEY", KEY)


def _ledger(tmp_path: Path, name: str) -> Path:
    return write_ledger(tmp_path / "outcomes.jsonl", LEDGERS[name])


@pytest.mark.parametrize("name", ["empty", "all open"])
def test_measures_and_spc_say_nothing_is_decided_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    ledger = str(_ledger(tmp_path, name))
    for command in ("measures", "spc"):
        assert main(["qi", command, ledger]) == 0
        out = capsys.readouterr().out.strip()
        assert out.startswith("nothing decided yet: ") and "\n" not in out
    points, summary = tmp_path / "p.csv", tmp_path / "s.csv"
    assert main(["qi", "spc", ledger, "--out", str(points), "--summary", str(summary)]) == 0
    assert list(pd.read_csv(summary).columns) == list(SUMMARY_COLUMNS)
    frame = pd.read_csv(points)
    assert set(POINT_COLUMNS) <= set(frame.columns) and frame.empty
    measures = tmp_path / "m.csv"
    assert main(["qi", "measures", ledger, "--out", str(measures)]) == 0
    assert list(pd.read_csv(measures).columns) == list(COLUMNS)


def test_an_all_open_expectation_detector_is_a_proportion_with_nothing_decided(
    tmp_path: Path,
) -> None:
    out = tmp_path / "m.csv"
    assert main(["qi", "measures", str(_ledger(tmp_path, "all open")), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert set(table["measure"]) == {"proportion"}
    assert table["opportunities"].tolist() == [0, 0] and table["open"].tolist() == [1, 1]


@pytest.mark.parametrize("name", ["empty", "all open", "violations only"])
def test_reports_and_charts_are_written_with_what_there_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    ledger = str(_ledger(tmp_path, name))
    page = tmp_path / "r.html"
    assert main(["qi", "report", ledger, "--out", str(page)]) == 0
    html = page.read_text()
    charts = tmp_path / "charts"
    assert main(["qi", "report", ledger, "--format", "svg", "--out", str(charts)]) == 0
    out = capsys.readouterr().out
    if name == "violations only":
        assert html.count('<section class="chart"') == 1
        assert [p.name for p in charts.iterdir()] == ["contact-after-death.svg"]
    else:
        assert "Nothing decided yet" in html and '<section class="chart"' not in html
        assert list(charts.iterdir()) == []
        assert "nothing decided yet" in out


@pytest.mark.parametrize("name", ["violations only"])
def test_spc_of_violations_only_shows_the_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert main(["qi", "spc", str(_ledger(tmp_path, name))]) == 0
    out = capsys.readouterr().out
    assert "contact-after-death" in out and "count" in out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_of_nothing_is_a_valid_empty_table_with_its_readme(
    tmp_path: Path, fmt: str
) -> None:
    ledger = _ledger(tmp_path, "empty")
    out = tmp_path / "export"
    assert main(["qi", "export", str(ledger), "--out", str(out), "--format", fmt]) == 0
    path = out / f"outcomes.{fmt}"
    frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    assert frame.empty
    first = ["failure_id", "detector", "outcome", "amended_from", "patient", "key"]
    assert list(frame.columns[:6]) == first
    assert {"opened_at", "due_at", "closed_at", "detected_at"} <= set(frame.columns)
    assert "0 opportunities" in (out / "README.txt").read_text()


# -- small random ledgers ----------------------------------------------------------

_KINDS = {
    "result-overdue": ("met", "late", "missed", "void", "open"),
    "clinic-overbooked": ("met", "violation", "open"),
    "contact-after-death": ("violation",),
}


@st.composite
def ledgers(draw: st.DrawFn) -> list[dict[str, object]]:
    n = draw(st.integers(min_value=0, max_value=12))
    records = []
    for i in range(n):
        detector = draw(st.sampled_from(sorted(_KINDS)))
        outcome = draw(st.sampled_from(_KINDS[detector]))
        day = draw(st.integers(min_value=1, max_value=28))
        due = f"2026-02-{day:02d}T{draw(st.integers(0, 23)):02d}:00:00+00:00"
        seen = f"2026-03-{draw(st.integers(1, 28)):02d}T00:00:00+00:00"
        rec = record(
            fid(draw(st.integers(1, 8)) if i else 1),  # repeats: latest wins
            outcome,
            None if outcome == "violation" and detector == "contact-after-death" else due,
            detector=detector,
            opened=due,
            detected=seen,
            site=draw(st.sampled_from(["north", "south", None])),
        )
        records.append(rec)
    return records


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=ledgers(), period=st.sampled_from(["day", "week", "month"]))
def test_the_commands_never_fail_on_small_ledgers(
    records: list[dict[str, object]], period: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ledger = str(write_ledger(base / "outcomes.jsonl", records))
        common = ["--period", period, "--by", "site"]
        m = base / "m.csv"
        assert main(["qi", "measures", ledger, *common, "--out", str(m)]) == 0
        table = pd.read_csv(m)
        assert list(table.columns) == ["detector", "site", *COLUMNS[1:]]
        # the measure is what the detector is, whatever records the ledger holds
        kinds = dict(zip(table["detector"], table["measure"], strict=True))
        assert kinds.get("result-overdue", "proportion") == "proportion"
        assert kinds.get("clinic-overbooked", "proportion") == "proportion"
        assert kinds.get("contact-after-death", "count") == "count"
        # every failure of the latest records is in the table once
        latest: dict[object, dict[str, object]] = {}
        for r in records:
            old = latest.get(r["failure_id"])
            if old is None:
                latest[r["failure_id"]] = r
                continue
            newer = str(r["detected_at"]) > str(old["detected_at"])
            # between equal times a decided record beats an open one, then the later wins
            tie = r["detected_at"] == old["detected_at"] and r["outcome"] != "open"
            if (
                newer
                or tie
                or (r["detected_at"] == old["detected_at"] and old["outcome"] == "open")
            ):
                latest[r["failure_id"]] = r
        failures = sum(r["outcome"] in ("late", "missed", "violation") for r in latest.values())
        assert int(table["failures"].sum()) == failures
        s = base / "s.csv"
        assert main(["qi", "spc", ledger, *common, "--summary", str(s)]) == 0
        assert list(pd.read_csv(s).columns) == ["detector", "site", *SUMMARY_COLUMNS[1:]]
        export = base / "export"
        assert main(["qi", "export", ledger, "--out", str(export)]) == 0
        assert len(pd.read_csv(export / "outcomes.csv")) == len(latest)
