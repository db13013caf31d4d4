"""`carewatch qi measures|spc|report` end to end on a generated ledger."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from streams.cli import main


def test_measures_to_csv_and_parquet_agree_with_the_ledger(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["qi", "measures", str(run_dir), "--out", str(tmp_path / "m.csv")]) == 0
    assert main(["qi", "measures", str(run_dir), "--out", str(tmp_path / "m.parquet")]) == 0
    csv = pd.read_csv(tmp_path / "m.csv")
    parquet = pd.read_parquet(tmp_path / "m.parquet")
    assert len(csv) == len(parquet) > 0
    # every decided opportunity of the ledger is in exactly one period
    ledger = [json.loads(x) for x in (run_dir / "outcomes.jsonl").read_text().splitlines()]
    for det in ("result-overdue", "clinic-letter-overdue"):
        mine = [r for r in ledger if r["detector"] == det]
        rows = csv[csv["detector"] == det]
        assert rows["met"].sum() == sum(r["outcome"] == "met" for r in mine)
        assert rows["failures"].sum() == sum(r["outcome"] in ("late", "missed") for r in mine)
    # weeks start on Monday, local midnight, with the offset written out
    assert all(
        pd.Timestamp(s).weekday() == 0 and s.endswith(("T00:00:00+00:00", "T00:00:00+01:00"))
        for s in csv["period_start"]
    )
    capsys.readouterr()
    assert main(["qi", "measures", str(run_dir), "--by", "site,specialty"]) == 0
    printed = capsys.readouterr().out
    assert "failure_proportion" in printed and "north" in printed and "Europe/London" in printed


def test_the_mapping_file_sets_the_timezone(run_dir: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "site.yaml"
    mapping.write_text("timezone: America/New_York\n")
    out = tmp_path / "m.csv"
    assert main(["qi", "measures", str(run_dir), "--mapping", str(mapping), "--out", str(out)]) == 0
    starts = pd.read_csv(out)["period_start"]
    assert all(s.endswith(("T00:00:00-05:00", "T00:00:00-04:00")) for s in starts)


def test_spc_points_and_summary(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changes = tmp_path / "changes.yaml"
    changes.write_text(
        "changes:\n  - date: 2026-03-09\n    label: new lab courier\n    detector: result-overdue\n"
    )
    args = ["qi", "spc", str(run_dir), "--changes", str(changes), "--target", "result-overdue=5%"]
    args += ["--out", str(tmp_path / "p.csv"), "--summary", str(tmp_path / "s.csv")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "variation" in printed and "assurance" in printed
    points = pd.read_csv(tmp_path / "p.csv")
    summary = pd.read_csv(tmp_path / "s.csv")
    assert set(summary["detector"]) == set(points["detector"])
    overdue = points[(points["detector"] == "result-overdue") & ~points["provisional"]]
    assert overdue["segment"].nunique() == 2  # the change rebased it
    assert pd.Timestamp(overdue[overdue["segment"] == 1]["period_start"].iloc[0]).day == 9
    other = points[(points["detector"] == "clinic-letter-overdue") & ~points["provisional"]]
    assert other["segment"].nunique() == 1  # the change was for result-overdue only
    row = summary[summary["detector"] == "result-overdue"].iloc[0]
    assert row["assurance"] in ("consistently passes", "consistently fails", "hit and miss")
    assert row["variation"].startswith(("common cause", "special cause"))
    assert bool(row["trial_limits"])  # three weeks: trial limits


def test_spc_p_prime(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    assert main(["qi", "spc", str(run_dir), "--chart", "pprime", "--out", str(out)]) == 0
    points = pd.read_csv(out)
    assert set(points[points["measure"] == "proportion"]["chart"]) == {"pprime"}
    assert set(points[points["measure"] == "count"]["chart"]) <= {"xmr"}


def test_the_report_is_one_offline_page_with_a_chart_per_measure(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    assert (
        main(["qi", "report", str(run_dir), "--out", str(out), "--change", "2026-03-09:SMS"]) == 0
    )
    page = out.read_text()
    measures = pd.read_csv(_measures_csv(run_dir, tmp_path))
    assert page.count('<section class="chart"') == measures["detector"].nunique()
    assert page.count("<svg") >= measures["detector"].nunique()
    # nothing fetched from anywhere: no scripts, links, imports, or external URLs
    for banned in ("<script", "<link", "@import", "<img", "<iframe"):
        assert banned not in page
    urls = set(re.findall(r"https?://[^\s\"')]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # names only
    assert "SMS" in page and "Trial limits" in page
    assert "Rare events" in page  # contact-after-death: a count of rare violations


def _measures_csv(run_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "m.csv"
    assert main(["qi", "measures", str(run_dir), "--out", str(path)]) == 0
    return path


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_single_charts_for_a_board_paper(run_dir: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "charts"
    args = ["qi", "report", str(run_dir), "--format", fmt, "--out", str(out)]
    assert main([*args, "--detector", "result-overdue", "--by", "site"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"result-overdue_north.{fmt}", f"result-overdue_south.{fmt}"]
    head = (out / files[0]).read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in head


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["spc", "--change", "March:SMS"], "--change 'March:SMS': start with the date"),
        (["spc", "--target", "result-overdue"], "write DETECTOR=VALUE"),
        (["spc", "--target", "nosuch=5%"], "--target nosuch: no such detector"),
        (["spc", "--baseline", "5"], "--baseline 5: limits need at least 12 points"),
        (["measures", "--by", "ward"], "--by ward: not a field"),
        (["measures", "--timezone", "Mars/Base"], "unknown timezone 'Mars/Base'"),
        (["measures", "--out", "m.xlsx"], "name a .csv or .parquet file"),
        (["report", "--format", "png", "--out", "file.txt"], "is a file"),
        (["report", "--detector", "nosuch", "--out", "r.html"], "--detector nosuch"),
    ],
)
def test_bad_arguments_give_one_line(
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    assert main(["qi", args[0], str(run_dir), *args[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("carewatch qi: error: ") and message in err
    assert "\n" not in err


def test_a_bad_ledger_gives_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "outcomes.jsonl"
    bad.write_text('{"failure_id": "a", "detector": "x", "outcome": "met"\n')
    assert main(["qi", "measures", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"carewatch qi: error: ledger {bad} line 1: not JSON"
