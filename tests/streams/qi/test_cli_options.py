"""`carewatch qi` options: the rules file (timezone and what each detector is), the
rare-events warning in every output, inputs that would have been accepted silently, and
the p′ chart's numbers against the formula of SPC.md."""

from __future__ import annotations

import itertools
import math
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg
from matplotlib.colors import to_rgb

from streams.cli import main
from streams.qi.charts import CAPTION_COLOUR, render_chart
from streams.qi.measures import measure_table
from streams.qi.series import RARE_EVENTS_WARNING, build_charts
from tests.streams.qi.helpers import fid, record, write_ledger

RULES = """\
timezone: America/New_York
rules:
  - name: sepsis-antibiotics
    key: encounter
    when: {type: triage.completed}
    expect: {type: medication.given}
    within: 1h
"""


def _rules(tmp_path: Path, text: str = RULES) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


# -- 3. the timezone of the periods ------------------------------------------------


def test_the_rules_file_sets_the_timezone_and_timezone_wins_over_it(
    run_dir: Path, tmp_path: Path
) -> None:
    rules = _rules(tmp_path)
    out = tmp_path / "m.csv"
    assert main(["qi", "measures", str(run_dir), "--rules", str(rules), "--out", str(out)]) == 0
    starts = pd.read_csv(out)["period_start"]
    assert all(s.endswith(("T00:00:00-05:00", "T00:00:00-04:00")) for s in starts)
    args = ["qi", "measures", str(run_dir), "--rules", str(rules), "--timezone", "UTC"]
    assert main([*args, "--out", str(out)]) == 0
    assert all(s.endswith("T00:00:00+00:00") for s in pd.read_csv(out)["period_start"])


def test_a_rules_file_without_a_timezone_leaves_the_mapping_s(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = _rules(tmp_path, RULES.replace("timezone: America/New_York\n", ""))
    mapping = tmp_path / "site.yaml"
    mapping.write_text("timezone: Asia/Tokyo\n")
    out = tmp_path / "m.csv"
    args = ["qi", "measures", str(run_dir), "--rules", str(rules), "--mapping", str(mapping)]
    assert main([*args, "--out", str(out)]) == 0
    assert all(s.endswith("T00:00:00+09:00") for s in pd.read_csv(out)["period_start"])
    # two files naming different zones: which is meant is not guessed
    both = ["qi", "measures", str(run_dir), "--rules", str(_rules(tmp_path)), "--mapping"]
    assert main([*both, str(mapping)]) == 2
    err = capsys.readouterr().err.strip()
    assert "America/New_York" in err and "Asia/Tokyo" in err and "--timezone" in err


def test_the_export_cuts_days_in_the_rules_file_s_timezone(tmp_path: Path) -> None:
    # 03:00 UTC on 3 March is still 2 March in New York
    ledger = write_ledger(tmp_path / "o.jsonl", [record(fid(1), "met", "2026-03-03T03:00:00Z")])
    out = tmp_path / "export"
    args = ["qi", "export", str(ledger), "--out", str(out), "--rules", str(_rules(tmp_path))]
    env_key = "0123456789abcdef0123456789abcdef"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAREWATCH_PSEUDONYM_KEY", env_key)
        assert main(args) == 0
    assert pd.read_csv(out / "outcomes.csv")["due_at"].tolist() == ["2026-03-02"]


# -- 4. a detector's measure comes from what it is ---------------------------------


def _open_only(tmp_path: Path, detector: str) -> Path:
    recs = [
        record(
            fid(i),
            "open",
            f"2026-03-0{i}T10:00:00+00:00",
            detector=detector,
            detected="2026-03-01T00:00:00+00:00",
        )
        for i in (2, 3)
    ]
    recs.append(
        record(
            fid(9),
            "violation",
            None,
            detector="clinic-overbooked",
            opened="2026-03-02T09:00:00+00:00",
        )
    )
    return write_ledger(tmp_path / "outcomes.jsonl", recs)


def test_a_rule_s_measure_is_a_proportion_when_the_rules_file_declares_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = _open_only(tmp_path, "sepsis-antibiotics")
    out = tmp_path / "m.csv"
    assert main(["qi", "measures", str(ledger), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    # without the rules file the name is unknown: the data decides, and a note says so
    assert "note: sepsis-antibiotics is neither built in nor in --rules" in err
    kinds = pd.read_csv(out).groupby("detector")["measure"].first().to_dict()
    assert kinds == {"clinic-overbooked": "proportion", "sepsis-antibiotics": "count"}
    rules = str(_rules(tmp_path))
    assert main(["qi", "measures", str(ledger), "--rules", rules, "--out", str(out)]) == 0
    assert "note:" not in capsys.readouterr().err
    kinds = pd.read_csv(out).groupby("detector")["measure"].first().to_dict()
    assert kinds == {"clinic-overbooked": "proportion", "sepsis-antibiotics": "proportion"}


def test_built_in_detectors_have_their_measure_whatever_the_ledger_holds(tmp_path: Path) -> None:
    ledger = _open_only(tmp_path, "result-overdue")
    out = tmp_path / "m.csv"
    assert main(["qi", "measures", str(ledger), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert set(table[table["detector"] == "result-overdue"]["measure"]) == {"proportion"}
    # clinic-overbooked keeps opportunities (sessions): one violation of one session
    row = table[table["detector"] == "clinic-overbooked"].iloc[0]
    assert (row["measure"], row["opportunities"], row["failure_proportion"]) == (
        "proportion",
        1,
        1.0,
    )


# -- 5. rare events carry their warning everywhere ----------------------------------


def _rare_counts(values: list[int]) -> pd.DataFrame:
    starts = pd.date_range("2026-01-05", periods=len(values), freq="7D", tz="Europe/London")
    return pd.DataFrame(
        {
            "detector": "contact-after-death",
            "period_start": starts,
            "period_end": starts + pd.Timedelta(days=7),
            "measure": "count",
            "opportunities": pd.array([pd.NA] * len(values), dtype="Int64"),
            "violations": values,
            "failures": values,
            "failure_proportion": np.nan,
            "open": 0,
            "complete": True,
            "small": False,
        }
    )


def test_limits_that_collapse_onto_the_mean_are_rare_events_too() -> None:
    # twos and the odd three: mean over 1, but screening drops every non-zero range
    chart = build_charts(_rare_counts([2] * 8 + [3] + [2] * 8))[0]
    assert chart.summary is not None and chart.summary.centre > 1
    assert chart.summary.lower == pytest.approx(chart.summary.upper)
    assert chart.rare_events
    steady = build_charts(_rare_counts([2, 4, 3, 5, 2, 4, 3, 5, 2, 4, 3, 5, 3]))[0]
    assert not steady.rare_events


def test_the_rare_events_warning_is_in_the_text_the_csv_and_the_charts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recs = [
        record(fid(i), "violation", None, detector="contact-after-death", opened=day)
        for i, day in enumerate(["2026-01-07T10:00:00Z", "2026-02-18T10:00:00Z"], 1)
    ]
    recs += [
        record(fid(100 + w), "met", f"2026-{1 + w // 4:02d}-{1 + 7 * (w % 4):02d}T10:00:00Z")
        for w in range(12)
    ]
    recs.append(record(fid(99), "met", "2026-04-01T00:00:00Z", detected="2026-04-10T00:00:00Z"))
    ledger = str(write_ledger(tmp_path / "outcomes.jsonl", recs))
    points, summary = tmp_path / "p.csv", tmp_path / "s.csv"
    assert main(["qi", "spc", ledger, "--out", str(points), "--summary", str(summary)]) == 0
    out = capsys.readouterr().out
    assert f"contact-after-death: {RARE_EVENTS_WARNING}" in out
    assert "result-overdue: Rare" not in out
    rare = pd.read_csv(points).groupby("detector")["rare_events"].agg(set).to_dict()
    assert rare == {"contact-after-death": {True}, "result-overdue": {False}}
    rare = pd.read_csv(summary).set_index("detector")["rare_events"].to_dict()
    assert rare == {"contact-after-death": True, "result-overdue": False}

    charts = tmp_path / "charts"
    assert main(["qi", "report", ledger, "--format", "svg", "--out", str(charts)]) == 0
    assert 'id="rare-events-warning"' in (charts / "contact-after-death.svg").read_text()
    assert 'id="rare-events-warning"' not in (charts / "result-overdue.svg").read_text()

    table = measure_table(__import__("streams.qi.ledger").qi.ledger.read_ledger([ledger]))
    by_name = {c.detector: c for c in build_charts(table)}

    def caption_pixels(png: bytes) -> int:
        pixels = mpimg.imread(BytesIO(png))[..., :3]
        strip = pixels[int(pixels.shape[0] * 0.88) :]
        return int((np.abs(strip - np.array(to_rgb(CAPTION_COLOUR))).sum(axis=2) < 0.1).sum())

    assert caption_pixels(render_chart(by_name["contact-after-death"], "png")) > 50
    assert caption_pixels(render_chart(by_name["result-overdue"], "png")) == 0


# -- 6. inputs that would have been accepted silently --------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "result-overdue=150%"], "a percentage goes from 0% to 100%"),
        (["--target", "result-overdue=5"], "result-overdue is a failure proportion"),
        (["--target", "contact-after-death=5%"], "contact-after-death is a count of violations"),
    ],
)
def test_targets_that_do_not_suit_the_measure_are_refused(
    run_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["qi", "spc", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("carewatch qi: error: ") and message in err and "\n" not in err


def test_a_count_target_for_a_count_measure_is_taken(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "s.csv"
    args = ["qi", "spc", str(run_dir), "--target", "contact-after-death=0"]
    assert main([*args, "--summary", str(summary)]) == 0
    row = pd.read_csv(summary).set_index("detector").loc["contact-after-death"]
    assert row["target"] == 0


def test_a_change_that_rebases_no_series_is_named_on_stderr(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["qi", "spc", str(run_dir), "--change", "2027-01-01:x", "--change", "2026-03-09:SMS"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning: the change 2027-01-01:x starts new limits in no series" in err
    assert "2026-03-09" not in err  # that one rebased the series


def test_a_baseline_longer_than_a_segment_is_warned_and_what_was_used_shown(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "s.csv"
    assert main(["qi", "spc", str(run_dir), "--baseline", "30", "--summary", str(summary)]) == 0
    captured = capsys.readouterr()
    assert "warning: --baseline 30:" in captured.err and "limit_points" in captured.err
    assert "limit_points" in captured.out
    table = pd.read_csv(summary)
    # three weeks: every series' limits rest on the points it has, fewer than 30
    assert (table["limit_points"] < 30).all()
    assert (table["limit_points"] == table["points"]).all()
    page = tmp_path / "r.html"
    assert main(["qi", "report", str(run_dir), "--baseline", "30", "--out", str(page)]) == 0
    assert "fewer than the 30 asked for" in page.read_text()


# -- 8. the points CSV: whole numbers, and p′ values from the formula ---------------


def test_segment_and_direction_are_whole_numbers_in_the_points_csv(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.csv"
    assert main(["qi", "spc", str(run_dir), "--out", str(out)]) == 0
    text = out.read_text().splitlines()
    header = text[0].split(",")
    seg, direction = header.index("segment"), header.index("direction")
    cells = [line.split(",") for line in text[1:]]
    assert any(c[seg] for c in cells)
    for c in cells:
        assert c[seg] == "" or c[seg].isdigit()
        assert c[direction] in ("", "-1", "0", "1")


def test_p_prime_limits_are_laney_s_formula(run_dir: Path, tmp_path: Path) -> None:
    points_csv, measures_csv = tmp_path / "p.csv", tmp_path / "m.csv"
    args = ["qi", "spc", str(run_dir), "--chart", "pprime", "--period", "day"]
    assert main([*args, "--out", str(points_csv)]) == 0
    assert (
        main(["qi", "measures", str(run_dir), "--period", "day", "--out", str(measures_csv)]) == 0
    )
    points = pd.read_csv(points_csv)
    measures = pd.read_csv(measures_csv)
    det = "result-overdue"
    mine = points[(points["detector"] == det) & ~points["provisional"]]
    assert set(mine["chart"]) == {"pprime"}
    # the same periods, from the measures table: complete, nothing open, opportunities
    m = measures[
        (measures["detector"] == det)
        & measures["complete"]
        & (measures["open"] == 0)
        & (measures["opportunities"] > 0)
    ]
    assert m["period_start"].tolist() == mine["period_start"].tolist()
    x = m["failures"].to_numpy(dtype=float)
    n = m["opportunities"].to_numpy(dtype=float)
    pbar = x.sum() / n.sum()
    sigma = [math.sqrt(pbar * (1 - pbar) / ni) for ni in n]
    z = [(xi / ni - pbar) / s for xi, ni, s in zip(x, n, sigma, strict=True)]
    sigma_z = sum(abs(b - a) for a, b in itertools.pairwise(z)) / (len(z) - 1) / 1.128
    upper = [min(1.0, pbar + 3 * s * sigma_z) for s in sigma]
    lower = [max(0.0, pbar - 3 * s * sigma_z) for s in sigma]
    assert len(set(upper)) > 1  # the denominators vary: so do the limits
    assert mine["centre"].tolist() == pytest.approx([pbar] * len(n), rel=1e-9)
    assert mine["upper"].tolist() == pytest.approx(upper, rel=1e-9)
    assert mine["lower"].tolist() == pytest.approx(lower, rel=1e-9, abs=1e-12)
