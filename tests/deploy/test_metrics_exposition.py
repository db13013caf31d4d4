"""``promtool check metrics`` on what a run, a Kafka worker and the MLLP listener serve,
with feeds configured and traffic gone through (names, types, HELP, units)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.mllp.framing import frame
from tests.deploy.tools import check_metrics, free_port, scrape
from tests.detectors.helpers import at

RULES = """
metrics:
  site_labels: [north]
  feeds:
    pas:
      match: {type: "appointment.*"}
      max_gap: 20m
      hours: "07:00-19:00"
    everything:
      max_gap: 1h
"""
HL7 = Path(__file__).resolve().parents[1] / "fixtures" / "samples" / "hl7v2"


def events() -> bytes:
    def line(eid: str, etype: str, time: str, refs: dict, attrs: dict | None = None) -> str:
        body = {"id": eid, "type": etype, "time": time, "patient": "P1", "refs": refs}
        return json.dumps({**body, "attrs": attrs or {}})

    lines = [
        line("e1", "order.placed", at(0), {"order": "O1"}, {"priority": "stat", "site": "north"}),
        line("e2", "appointment.missed", at(1), {"appointment": "A1"}),
        line("e3", "order.placed", at(5), {"order": "O2"}, {"priority": "stat"}),
        "not json",
    ]
    return ("\n".join(lines) + "\n").encode()


def wait_for(text: str, port: int, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        try:
            body = scrape(port)
            if text in body:
                return body
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{text!r} never served; last scrape:\n{body[-3000:]}")


def test_a_run() -> None:
    from detectors.rules import parse_settings
    from streams.adapters import iter_records
    from streams.commands.run import _serve_metrics
    from streams.monitoring import observe_feeds
    from streams.runner import Runner
    from streams.sinks import MemorySink

    settings = parse_settings(RULES)
    runner = Runner(settings, MemorySink())
    port = free_port()
    metrics, feeds = _serve_metrics(runner, settings, port)
    runner.on_reject = lambda r: metrics.count_rejected(r.kind)
    runner.feed(observe_feeds(iter_records(events(), "jsonl"), feeds))
    body = scrape(port)
    assert 'carewatch_feed_events_total{feed="pas",site="all"} 1.0' in body
    assert 'carewatch_events_total{type="appointment.missed"} 1.0' in body
    assert "carewatch_build_info{" in body
    check_metrics(body)


def test_the_mllp_listener(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    port, mport = free_port(), free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "streams.cli", "listen", "mllp", "--port", str(port)),
            *("--out", str(tmp_path / "events.jsonl"), "--rejected", str(tmp_path / "rej.jsonl")),
            *("--metrics-port", str(mport), "--feeds", str(rules)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for("carewatch_mllp_messages_received_total", mport)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
            for name in ("ORM-O01-01.hl7", "ADT-A03-01.hl7"):
                conn.sendall(frame((HL7 / name).read_bytes().lstrip(b"\xef\xbb\xbf")))
                conn.recv(65536)
            conn.sendall(frame(b"garbage"))
            conn.recv(65536)
        body = wait_for('carewatch_feed_events_total{feed="everything",site="all"} ', mport)
        assert "carewatch_mllp_messages_received_total 3.0" in body
        check_metrics(body)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.kafka
def test_a_worker(kafka_bootstrap: str, tmp_path: Path) -> None:
    from tests.streams.kafka.harness import Setup

    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    s = Setup(kafka_bootstrap, tmp_path, partitions=2)
    try:
        mport = free_port()
        s.start_worker("--rules", str(rules), "--metrics-port", str(mport))
        s.publish(events().splitlines(keepends=True))
        body = wait_for('carewatch_feed_events_total{feed="pas",site="all"} 1.0', mport, 180)
        assert "carewatch_worker_live 1.0" in body
        assert "carewatch_kafka_lag_messages" in body
        check_metrics(body)
    finally:
        s.stop()
