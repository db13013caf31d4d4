"""``carewatch listen mllp`` as a real process: signals, files, metrics, logs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.cli import main
from streams.mllp.framing import frame

from .support import WAIT, parse_ack, sample

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_line(path: Path, pattern: str, process: subprocess.Popen[bytes]) -> re.Match[str]:
    """The first match of ``pattern`` in the log file, waiting for it to be written."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text()) if path.exists() else None
        if found:
            return found
        if process.poll() is not None:
            raise AssertionError(f"listener exited early:\n{path.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in the log:\n{path.read_text()}")


def exchange(port: int, messages: list[bytes]) -> list[str]:
    codes = []
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
        for message in messages:
            conn.sendall(frame(message))
            data = b""
            while not data.endswith(b"\x1c\r"):
                chunk = conn.recv(65536)
                assert chunk, "connection closed before the ACK"
                data += chunk
            codes.append(parse_ack(data).code)
    return codes


@contextmanager
def reaped(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """``process``, killed on the way out if the test left it running."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def terminated(process: subprocess.Popen[bytes]) -> int:
    """Send SIGTERM and wait for the exit status (a graceful stop within ``WAIT``)."""
    process.send_signal(signal.SIGTERM)
    return process.wait(WAIT)


def test_listener_process_serves_stops_on_sigterm_and_keeps_patient_data_out_of_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, rejected, memory = tmp_path / "events.jsonl", tmp_path / "rej.jsonl", tmp_path / "mem.json"
    log = tmp_path / "listener.log"
    metrics_port = free_port()
    command = [
        sys.executable,
        "-m",
        "streams.cli",
        "listen",
        "mllp",
        "--port",
        "0",
        "--out",
        str(out),
        "--rejected",
        str(rejected),
        "--memory",
        str(memory),
        "--metrics-port",
        str(metrics_port),
        "--idle-timeout",
        "1m",
        "--log-level",
        "debug",
    ]
    with open(log, "wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    with reaped(process):
        port = int(wait_for_line(log, r"listening for MLLP on 127\.0\.0\.1:(\d+)", process)[1])
        codes = exchange(
            port,
            [
                sample("SIU-S12-01.hl7"),
                sample("LAB-ORU-1.hl7"),
                b"MSH|broken",
                sample("SIU-S14-01.hl7"),
            ],
        )
        assert codes == ["AA", "AA", "AR", "AA"]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=WAIT) as r:
            scraped = r.read().decode()
        assert "carewatch_mllp_messages_received_total 4.0" in scraped
        assert 'carewatch_mllp_messages_rejected_total{kind="invalid"} 1.0' in scraped
        assert "PATID1234" not in scraped
        assert terminated(process) == 0

    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["id"] for e in events] == [
        "MSG00012:appointment.booked:1",
        "182:result.reported:1",
        "182:result.reported:2",
    ]
    [dead] = [json.loads(line) for line in rejected.read_text().splitlines()]
    assert dead["ack"] == "AR" and dead["reason"].startswith("not an HL7 v2 message")
    assert "36996" in memory.read_text()  # the appointment the S12 booked is remembered

    logged = log.read_text()
    assert "MLLP listener stopped" in logged and "ended (closed by the client)" in logged
    # Logs carry peers and counts, never content: no patient id, name, or segment.
    for secret in ("PATID1234", "10006579", "DUCK", "EVERYMAN", "PID|", "MSH|", "36996"):
        assert secret not in logged

    # The embedded runner reads the listener's output file like any event file.
    assert main(["run", str(out), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "3 events" in capsys.readouterr().out


def test_listener_needs_a_destination(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CAREWATCH_KAFKA_BOOTSTRAP", raising=False)
    assert main(["listen", "mllp", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("carewatch listen: error: ") and "--out FILE" in err


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--max-message-size", "lots", "is not a size"),
        ("--max-message-size", "100", "too small"),
        ("--idle-timeout", "forever", "not a duration"),
        ("--port", "70000", "not a TCP port"),
        ("--tls-cert", "server.pem", "needs both --tls-cert and --tls-key"),
        ("--frame-timeout", "0", "frame timeout must be more than 0"),
        ("--max-connections", "0", "at least 1"),
    ],
)
def test_unusable_settings_give_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, words: str
) -> None:
    argv = ["listen", "mllp", "--out", str(tmp_path / "e.jsonl"), option, value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("carewatch listen: error: ") and words in err
    assert len(err.splitlines()) == 1


def test_a_port_in_use_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["listen", "mllp", "--port", str(port), "--out", str(tmp_path / "e.jsonl")]
        argv += ["--rejected", str(tmp_path / "r.jsonl")]
        assert main(argv) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_help_documents_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["listen", "mllp", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--host",
        "--port",
        "--max-message-size",
        "--idle-timeout",
        "--shutdown-grace",
        "--out",
        "--kafka-bootstrap",
        "--kafka-topic",
        "--kafka-timeout",
        "--rejected",
        "--keep-no-event",
        "--mapping",
        "--memory",
        "--metrics-port",
        "--metrics-host",
        "--log-level",
    ):
        assert option in text
    docs = (ROOT / "docs" / "mllp.md").read_text()
    for option in re.findall(r"--[a-z-]+", text):
        if option != "--help":
            assert f"`{option}" in docs, f"{option} is not in docs/mllp.md"


def test_the_dead_letter_and_the_events_file_are_owner_only(tmp_path: Path) -> None:
    # Both hold patient data: 0600 whatever the umask the listener was started with.
    out, rejected, log = tmp_path / "events.jsonl", tmp_path / "rej.jsonl", tmp_path / "l.log"
    command = [sys.executable, "-m", "streams.cli", "listen", "mllp", "--port", "0"]
    command += ["--out", str(out), "--rejected", str(rejected), "--memory", str(tmp_path / "m")]
    env = {k: v for k, v in os.environ.items() if k != "CAREWATCH_UMASK"}
    with open(log, "wb") as err:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stderr=err, stdout=subprocess.DEVNULL, umask=0o022
        )
    with reaped(process):
        port = int(wait_for_line(log, r"listening for MLLP on 127\.0\.0\.1:(\d+)", process)[1])
        assert exchange(port, [sample("SIU-S12-01.hl7"), b"MSH|broken"]) == ["AA", "AR"]
        assert terminated(process) == 0
    assert len(rejected.read_text().splitlines()) == 1  # the AR-ed message is in it
    for path in (rejected, out):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
