"""The Kafka worker at --log-level debug on the real broker: its log never carries a
record's content (patient identifiers), and the files it creates are owner-only."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.streams.kafka.harness import Setup, embedded

pytestmark = pytest.mark.kafka

# A patient identifier no log line has any business carrying.
MARK = "QZPATIENT"


def _events() -> list[bytes]:
    base = time.time() - 3 * 86400
    lines = []
    for i in range(40):
        start = base + i * 60
        for n, (kind, dt) in enumerate((("order.placed", 0), ("result.reported", 30))):
            lines.append(
                json.dumps(
                    {
                        "id": f"e{i}-{n}",
                        "type": kind,
                        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + dt)),
                        "patient": f"{MARK}{i:04d}",
                        "refs": {"order": f"ORD{i}"},
                        "attrs": {"priority": "stat", "critical": i % 2 == 0},
                    }
                ).encode()
                + b"\n"
            )
    return lines


@pytest.fixture
def setup(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Setup]:
    s = Setup(kafka_bootstrap, tmp_path, partitions=2)
    try:
        yield s
    finally:
        s.stop()


def test_debug_logging_carries_no_record_content(setup: Setup) -> None:
    lines = _events()
    expected = embedded(lines, time.time())
    assert expected["outcomes"]
    setup.publish(lines)
    worker = setup.start_worker("--log-level", "debug")
    setup.wait_for_outputs(expected)
    # the outputs themselves do carry the identifiers: the test would see a leak
    assert any(MARK in json.dumps(r) for _, r in setup.read("outcomes"))
    setup.stop()
    assert worker.returncode == 0
    log = (setup.tmp / "worker0.log").read_text(errors="replace")
    assert "DEBUG" in log  # debug logging was on
    leaks = [line for line in log.splitlines() if MARK in line]
    assert not leaks, leaks[:3]
    created = [p for p in (setup.tmp / "worker0").rglob("*")]
    assert created
    for path in created:
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, (path, oct(want))
