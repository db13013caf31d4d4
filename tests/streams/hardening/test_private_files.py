"""Files and directories that hold patient identifiers are owner-only (0600, 0700) by
default whatever the umask, and as the umask says when CAREWATCH_UMASK asks for it."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.cli import main
from tests.detectors.helpers import at

EVENTS = "".join(
    json.dumps(
        {
            "id": str(i),
            "type": "order.placed",
            "time": at(i),
            "patient": f"P{i}",
            "refs": {"order": f"O{i}"},
            "attrs": {"priority": "stat"},
        }
    )
    + "\n"
    for i in range(3)
)


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The usual default umask (022): files world-readable unless Carewatch says not."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_output_is_owner_only(lax_umask: None, tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text(EVENTS)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "events.jsonl"), "--out", str(out), "--quiet"]) == 0
    assert mode(out) == 0o700
    files = sorted(out.iterdir())
    assert files and all(mode(f) == 0o600 for f in files)


def test_convert_output_is_owner_only(lax_umask: None, tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text(EVENTS)
    assert (
        main(["convert", str(tmp_path / "events.jsonl"), "--out", str(tmp_path / "c.jsonl")]) == 0
    )
    assert mode(tmp_path / "c.jsonl") == 0o600


def test_carewatch_umask_asks_for_other_modes(
    lax_umask: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREWATCH_UMASK", "027")
    (tmp_path / "events.jsonl").write_text(EVENTS)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "events.jsonl"), "--out", str(out), "--quiet"]) == 0
    assert mode(out) == 0o750
    assert all(mode(f) == 0o640 for f in out.iterdir())


def test_the_umask_of_the_caller_is_given_back(lax_umask: None, tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text(EVENTS)
    main(["run", str(tmp_path / "events.jsonl"), "--out", str(tmp_path / "out"), "--quiet"])
    assert os.umask(0o022) == 0o022


def test_a_bad_carewatch_umask_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAREWATCH_UMASK", "rw-r--r--")
    assert main(["run", "nothing.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "CAREWATCH_UMASK" in err and len(err.strip().splitlines()) == 1
