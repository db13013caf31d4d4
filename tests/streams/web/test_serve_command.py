"""``carewatch serve`` refuses what it cannot use with one line, before serving."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from streams.cli import main
from streams.store import open_store


@pytest.fixture
def store_file(tmp_path: Path) -> str:
    path = str(tmp_path / "s.db")
    open_store(path, create=True).close()
    return path


def test_bad_settings_are_one_line_errors(
    store_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["--tls-cert", store_file], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "x.pem", "--tls-key", "y.pem"], "no such file: x.pem"),
        (["--timezone", "Mars/Base"], "unknown time zone"),
    ]
    for extra, message in cases:
        assert main(["serve", "--store", store_file, *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["serve", "--store", str(tmp_path / "empty.db")]) == 2
    assert "carewatch store init" in capsys.readouterr().err


def test_a_port_in_use_is_said_plainly(store_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    port = int(os.environ.get("CAREWATCH_TEST_WEB_PORT", "28080")) + 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert main(["serve", "--store", store_file, "--port", str(port)]) == 2
    assert "Address already in use" in capsys.readouterr().err
