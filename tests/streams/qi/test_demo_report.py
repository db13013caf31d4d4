"""`carewatch demo` ends with the QI report of its week."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main


def test_demo_writes_and_names_its_qi_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--scale", "small", "--days", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = out / "qi-report.html"
    assert f"The QI report of the week (daily failure rates, SPC charts): {report}" in printed
    page = report.read_text()
    assert page.count('<section class="chart"') >= 5
    assert "Failure rates per day" in page
