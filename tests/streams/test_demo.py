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


def test_demo_prints_one_event_count_and_ends_with_a_command_that_works_as_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the README's ``bash deploy/local/carewatch demo``, ``carewatch`` is not on
    the PATH: the commands the demo prints call the program as it was called
    (``.venv/bin/carewatch``), and the last one runs as printed."""
    import os
    import re
    import shlex
    import subprocess
    import sys

    installed = Path(sys.executable).parent / "carewatch"
    assert installed.is_file(), "the test environment has the carewatch script"
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "carewatch").symlink_to(installed)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no carewatch on it
    monkeypatch.setattr(sys, "argv", [str(venv_bin / "carewatch"), "demo"])
    out = tmp_path / "demo"
    assert main(["demo", "--scale", "small", "--days", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    counts = re.findall(r"([\d,]+) events\b", printed + captured.err)
    assert len(counts) == 1, counts
    assert "  .venv/bin/carewatch serve --store " in printed
    last = printed.strip().splitlines()[-1].strip()
    assert last.startswith(".venv/bin/carewatch run "), last
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(shlex.split(last), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "my-run" / "outcomes.jsonl").stat().st_size > 0


def test_printed_commands_say_carewatch_when_that_is_this_program_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from streams.commands import invocation

    program = tmp_path / "bin" / "carewatch"
    program.parent.mkdir()
    program.symlink_to(Path(sys.executable).parent / "carewatch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{program.parent}:/usr/bin:/bin")
    assert invocation(str(program)) == "carewatch"  # an active venv
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert invocation(str(program)) == "bin/carewatch"
    monkeypatch.chdir("/")
    assert invocation(str(program)) == str(program)
    assert invocation("/somewhere/pytest").endswith(" -m streams.cli")


def test_demo_writes_its_qi_report_in_the_rules_file_s_timezone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("timezone: Asia/Tokyo\n")
    out = tmp_path / "demo"
    args = ["demo", "--scale", "small", "--days", "3", "--out", str(out), "--rules", str(rules)]
    assert main(args) == 0
    capsys.readouterr()
    page = (out / "qi-report.html").read_text()
    assert "periods in Asia/Tokyo" in page and "Europe/London" not in page
    # times in it are Tokyo's too: the data's horizon and when it was made
    assert page.count(" JST") >= 2 and " GMT" not in page and " BST" not in page
