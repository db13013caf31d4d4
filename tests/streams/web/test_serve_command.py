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


def test_serve_publishes_the_worklist_metrics_on_a_port_of_their_own(tmp_path: Path) -> None:
    """The metrics port answers without sign-in, with the rules file's labels, and
    ``promtool check metrics`` accepts what it serves; the web port still needs sign-in."""
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from streams.store import parse_failure
    from tests.deploy.tools import check_metrics, free_port, scraped
    from tests.streams.store.support import line, record

    path = str(tmp_path / "s.db")
    store = open_store(path, create=True)
    store.upsert([parse_failure(line(record(n, site="north"))) for n in range(1, 4)])
    store.close()
    rules = tmp_path / "rules.yaml"
    rules.write_text("metrics:\n  site_labels: [north, south]\n")
    web, metrics = free_port(), free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "streams.cli", "serve", "--store", path),
            *("--port", str(web), "--metrics-port", str(metrics), "--rules", str(rules)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline and "carewatch_worklist" not in text:
            assert proc.poll() is None, proc.communicate()[0]
            text = scraped(metrics)
            time.sleep(0.3)
        check_metrics(text)
        assert (
            'carewatch_worklist_open_failures{detector="reschedule-notice",site="north"} 3.0'
            in text
        )
        assert (
            'carewatch_worklist_open_failures{detector="result-overdue",site="south"} 0.0' in text
        )
        assert "carewatch_build_info{" in text and "P00001" not in text
        landed = ""  # the worklist's pages still send a visitor to sign in
        while time.monotonic() < deadline and not landed:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/feedback", timeout=10) as r:
                    landed = r.url
            except urllib.error.URLError:
                time.sleep(0.3)
        assert "/signin?next=%2Ffeedback" in landed
    finally:
        proc.terminate()
        proc.wait(timeout=30)
