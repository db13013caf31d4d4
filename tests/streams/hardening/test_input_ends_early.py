"""An input that ends early (a truncated gzip file) is named on stderr and makes the
command exit non-zero; a directory given as input is called a directory."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from streams.cli import main
from tests.detectors.helpers import at


def _events(n: int) -> str:
    return "".join(
        json.dumps(
            {
                "id": str(i),
                "type": "order.placed",
                "time": at(i / 60),
                "patient": f"P{i}",
                "refs": {"order": f"O{i}"},
                "attrs": {"priority": "stat", "pad": "x" * 40},
            }
        )
        + "\n"
        for i in range(n)
    )


def _truncated_gzip(tmp_path: Path) -> Path:
    whole = gzip.compress(_events(2000).encode())
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    return path


@pytest.mark.parametrize("command", ["run", "convert"])
def test_a_truncated_gzip_input_is_named_and_fails_the_command(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _truncated_gzip(tmp_path)
    extra = ["--out", str(tmp_path / "out")] if command == "run" else []
    if command == "convert":
        extra = ["--out", str(tmp_path / "events.jsonl")]
    code = main([command, str(path), *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert f"input {path} ends early" in err
    assert "truncated" in err


def test_a_whole_gzip_input_still_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(_events(20).encode()))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0


@pytest.mark.parametrize("command", ["run", "convert"])
def test_a_directory_input_is_called_a_directory(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inbox").mkdir()
    code = main([command, str(tmp_path / "inbox")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"input {tmp_path / 'inbox'} is a directory" in err
    assert "does not exist" not in err
