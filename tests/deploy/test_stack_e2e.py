"""End to end, for real: a live ``carewatch worker`` on the real broker receives a feed,
``deploy/monitoring/stack`` runs Prometheus and Alertmanager with the project's rules and
routing (short test-only intervals), the feed stops, and the feed-silent alert reaches a
webhook receiver after the feed's configured gap, then resolves when the feed resumes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from tests.deploy.tools import free_port, scrape, stack, stack_env, tool
from tests.streams.kafka.harness import Setup

pytestmark = pytest.mark.kafka

GAP = 10.0  # seconds: the feed's max_gap, short for the test
RULES = f"""
metrics:
  feeds:
    pas:
      match: {{type: "appointment.*"}}
      max_gap: {GAP:.0f}s
"""
WAIT = 120.0  # bound on every wait: a broken stack fails the test, never hangs it


class Receiver:
    """A webhook receiver: every notification Alertmanager posts, with when it came."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.got.append((time.time(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def feed_alerts(self, status: str) -> list[float]:
        """Times of notifications holding a CarewatchFeedSilent alert of feed pas in
        ``status`` (firing or resolved)."""
        return [
            at
            for at, payload in self.got
            for alert in payload.get("alerts", [])
            if alert["labels"].get("alertname") == "CarewatchFeedSilent"
            and alert["labels"].get("feed") == "pas"
            and alert["status"] == status
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Feed:
    """Publishes an appointment event every half second while running."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.topic = topic
        self.running = threading.Event()
        self.stopped = threading.Event()
        self.last_sent = 0.0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            if self.running.is_set():
                now = datetime.now(UTC)
                event = {
                    "id": f"ev-{uuid.uuid4().hex}",
                    "type": "appointment.booked",
                    "time": now.isoformat(),
                    "patient": "P-TEST-1",
                    "refs": {"appointment": f"A-{uuid.uuid4().hex[:8]}"},
                    "attrs": {"start": now.isoformat()},
                }
                self.producer.send(self.topic, key=b"P-TEST-1", value=json.dumps(event).encode())
                self.producer.flush()
                self.last_sent = time.time()
            time.sleep(0.5)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        self.producer.close()


def wait_until(what: str, check: Callable[[], bool], logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


@pytest.fixture
def setup(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Setup]:
    s = Setup(kafka_bootstrap, tmp_path, partitions=1)
    try:
        yield s
    finally:
        s.stop()


def test_the_feed_silent_alert_fires_when_a_feed_stops_and_resolves_when_it_resumes(
    setup: Setup, tmp_path: Path
) -> None:
    tool("prometheus")
    tool("prometheus-alertmanager")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    metrics_port = free_port()
    setup.start_worker("--rules", str(rules), "--metrics-port", str(metrics_port))
    receiver = Receiver()
    feed = Feed(setup.bootstrap, setup.topics["events"])
    env = stack_env(
        tmp_path / "stack",
        WORKER_TARGETS=f"127.0.0.1:{metrics_port}",
        MLLP_TARGETS="",
        WEBHOOK_URL=f"http://127.0.0.1:{receiver.port}",
        ALERT_GROUP_WAIT="1s",
        ALERT_GROUP_INTERVAL="2s",
    )

    def logs() -> str:
        out = [setup.logs()]
        for name in ("prometheus", "alertmanager"):
            path = tmp_path / "stack" / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        out.append(f"--- notifications\n{receiver.got}")
        return "\n".join(out)

    def fed() -> bool:
        try:
            return 'carewatch_feed_events_total{feed="pas",site="all"} 0.0' not in scrape(
                metrics_port
            ) and 'feed="pas"' in scrape(metrics_port)
        except OSError:
            return False

    started = False
    try:
        feed.running.set()
        wait_until("the worker to receive the feed", fed, logs)
        out = stack("start", env)
        started = True
        assert out.returncode == 0, out.stderr
        # flowing for longer than the gap: no alert
        time.sleep(GAP * 1.5)
        assert receiver.feed_alerts("firing") == [], logs()

        feed.running.clear()
        time.sleep(1.0)  # let the last send finish
        stopped_at = feed.last_sent
        wait_until("the feed-silent alert", lambda: bool(receiver.feed_alerts("firing")), logs)
        # not before the feed had been silent for its gap
        assert receiver.feed_alerts("firing")[0] >= stopped_at + GAP - 1.0

        feed.running.set()
        resumed_at = time.time()
        wait_until("the alert to resolve", lambda: bool(receiver.feed_alerts("resolved")), logs)
        assert receiver.feed_alerts("resolved")[0] >= resumed_at
    finally:
        feed.close()
        if started:
            stack("stop", env)
        receiver.close()
