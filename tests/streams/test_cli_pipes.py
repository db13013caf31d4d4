"""A reader that stops early (``| head``) is not an error: no traceback, exit status 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generate_into_a_reader_that_stops_early_ends_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "generate", "--days", "2", "--seed", "1", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away with most of the output unread
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert first.startswith(b"{")
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_command_started_as_a_child_runs_the_build_under_test() -> None:
    # Tests start `python -m streams.cli` from the repository root; on the compiled pass
    # (tests/run, CAREWATCH_TEST_BUILD=compiled) the child must import the compiled build,
    # not the sources in its working directory.
    compiled = os.environ.get("CAREWATCH_TEST_BUILD") == "compiled"
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    assert ("compiled build (mypyc)" if compiled else "pure-Python build") in out
