from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.cli import main


def test_demo_generates_runs_and_explains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--scale", "small", "--days", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "failure rate" in printed and "One failure of each kind" in printed
    for name in (
        "events.jsonl.gz",
        "failures.jsonl",
        "outcomes.jsonl",
        "open.jsonl",
        "rejected.jsonl",
        "truth.jsonl",
    ):
        assert (out / name).is_file(), name
        assert name in printed
    failures = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert {f["detector"] for f in failures} >= {"result-overdue", "clinic-letter-overdue"}
    # the demo decides everything (as-of past the end), and its outcomes match the truth
    truth = {
        json.loads(x)["failure_id"]: json.loads(x)["outcome"]
        for x in (out / "truth.jsonl").read_text().splitlines()
    }
    outcomes = {
        json.loads(x)["failure_id"]: json.loads(x)["outcome"]
        for x in (out / "outcomes.jsonl").read_text().splitlines()
    }
    assert outcomes == truth
    assert (out / "open.jsonl").read_text() == ""
    assert len((out / "rejected.jsonl").read_text().splitlines()) >= 1


def test_demo_into_a_file_gives_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep me")
    assert main(["demo", "--scale", "small", "--days", "1", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"carewatch demo: error: output directory {target} is a file; name a directory"
    assert target.read_text() == "keep me"
