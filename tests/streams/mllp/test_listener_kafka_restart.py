"""A listener process handing events to the real broker while the broker restarts under
traffic (``deploy/kafka/broker restart``): messages are answered AE while it is away, AA
comes back soon after it returns, every AA-ed message's events are on the topic, and
SIGTERM then ends the listener cleanly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from streams.mllp.framing import frame
from tests.conftest import BROKER, broker_env

from .support import WAIT, parse_ack, sample
from .test_listen_command import ROOT, wait_for_line

pytestmark = pytest.mark.kafka

#: Bound on waiting for the first AA after the broker is back: generous, so a slow test
#: machine cannot fail it; the listener used to need minutes, or never got there.
RECOVERY = 60.0


def message(n: int) -> bytes:
    return sample("SIU-S12-01.hl7").replace(b"|MSG00012|", f"|MSGR{n:06d}|".encode())


@dataclass
class Sender:
    """An MLLP sender as integration engines behave: one message at a time, waiting
    for its ACK; no ACK (timeout or closed connection): reconnect and go on."""

    port: int
    answers: list[tuple[int, float, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                conn = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
            except OSError:
                time.sleep(0.2)
                continue
            with conn:
                while not self.stop.is_set():
                    n += 1
                    code = self._exchange(conn, message(n))
                    self.answers.append((n, time.monotonic(), code))
                    if code is None:
                        break
                    time.sleep(0.05)

    @staticmethod
    def _exchange(conn: socket.socket, data: bytes) -> str | None:
        try:
            conn.sendall(frame(data))
            got = b""
            while not got.endswith(b"\x1c\r"):
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                got += chunk
        except OSError:
            return None
        return parse_ack(got).code

    def wait_for(self, what: str, check: object, bound: float) -> None:
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {self.answers[-20:]}")


def test_the_handoff_recovers_after_a_broker_restart_under_traffic(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    status = subprocess.run(
        [str(BROKER), "status"], env=broker_env(), capture_output=True, text=True
    )
    assert status.stdout.startswith(f"running {kafka_bootstrap} "), status.stdout
    topic = f"mllp-restart-{uuid.uuid4().hex[:10]}"
    log = tmp_path / "listener.log"
    command = [
        sys.executable,
        "-m",
        "streams.cli",
        "listen",
        "mllp",
        "--port",
        "0",
        "--kafka-bootstrap",
        kafka_bootstrap,
        "--kafka-topic",
        topic,
        "--kafka-timeout",
        "5s",
        "--rejected",
        str(tmp_path / "rejected.jsonl"),
    ]
    with open(log, "wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    sender: Sender | None = None
    thread: threading.Thread | None = None
    try:
        port = int(wait_for_line(log, r"listening for MLLP on 127\.0\.0\.1:(\d+)", process)[1])
        sender = Sender(port)
        thread = threading.Thread(target=sender.run, daemon=True)
        thread.start()
        s = sender
        s.wait_for(
            "AAs before the restart", lambda: sum(c == "AA" for *_, c in s.answers) >= 5, WAIT
        )
        restart = subprocess.run(
            [str(BROKER), "restart"], env=broker_env(), capture_output=True, text=True
        )
        assert restart.returncode == 0, restart.stderr
        back = time.monotonic()
        s.wait_for(
            "an AA after the broker came back",
            lambda: any(c == "AA" and t > back for _, t, c in s.answers),
            RECOVERY,
        )
        count = len(s.answers)
        s.wait_for("more messages", lambda: len(s.answers) >= count + 5, WAIT)
        s.stop.set()
        thread.join(WAIT)
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0
    finally:
        if sender is not None:
            sender.stop.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    logged = log.read_text()
    assert "Traceback" not in logged, logged[-3000:]
    codes = [c for *_, c in sender.answers]
    # while the broker was away, the sender was told so: AE (send it again), and the
    # message is kept whole in the dead letter
    assert "AE" in codes
    dead = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert dead and all(d["kind"] == "undelivered" and d["ack"] == "AE" for d in dead)
    acknowledged = {f"MSGR{n:06d}:appointment.booked:1" for n, _, c in sender.answers if c == "AA"}
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        on_topic = {json.loads(r.value)["id"] for r in consumer}
    finally:
        consumer.close()
    assert acknowledged <= on_topic
