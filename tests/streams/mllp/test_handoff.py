"""Handoffs and the dead-letter file: durable before they return, whole lines always."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from detectors.errors import RuntimeFault
from detectors.events import Event
from streams.adapters import iter_records
from streams.deadletter import INVALID, TOO_LARGE, Rejected
from streams.mllp.appender import AppendError, DurableAppender
from streams.mllp.dead_letter import DeadLetterFile, dead_letter_record
from streams.mllp.handoff import FileHandoff, HandoffError
from streams.mllp.kafka_handoff import KafkaHandoff, event_key

NOON = 1772452800.0  # 2026-03-02T12:00:00Z


def event(n: int, patient: str | None = "P1", **refs: str) -> Event:
    return Event(f"m{n}:order.placed:1", "order.placed", NOON + n, patient, dict(refs))


def test_file_handoff_writes_whole_lines_from_concurrent_deliveries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)

    async def scenario() -> None:
        handoff = FileHandoff(path)
        batches = [[event(10 * i + j, order=f"O{i}") for j in range(3)] for i in range(40)]
        await asyncio.gather(*(handoff.deliver(b) for b in batches))
        await handoff.close()

    asyncio.run(scenario())
    lines = path.read_bytes().splitlines()
    assert len(lines) == 120
    # The embedded runner reads the file as canonical events, every line of it.
    records = list(iter_records(path, "jsonl"))
    assert all(isinstance(r, Event) for r in records)
    assert {r.id for r in records if isinstance(r, Event)} == {
        f"m{10 * i + j}:order.placed:1" for i in range(40) for j in range(3)
    }
    # Group commit: waiting writers share fsyncs (never more than one per delivery).
    assert 1 <= len(fsyncs) <= 40


def test_a_line_cut_by_a_crash_stays_one_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"id": "x", "type": "order.pla')  # the crash cut this line

    async def scenario() -> None:
        handoff = FileHandoff(path)
        await handoff.deliver([event(1)])
        await handoff.close()

    asyncio.run(scenario())
    first, second = path.read_bytes().splitlines()
    assert first == b'{"id": "x", "type": "order.pla'
    assert json.loads(second)["id"] == "m1:order.placed:1"


def test_a_failed_write_raises_and_the_next_write_starts_a_new_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    calls = {"n": 0}
    real_write = DurableAppender._write

    def flaky(self: DurableAppender, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            self._file.write(data[:7])  # half a line reached the disk, then the disk filled
            self._file.flush()
            raise OSError(28, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(DurableAppender, "_write", flaky)

    async def scenario() -> None:
        handoff = FileHandoff(path)
        with pytest.raises(HandoffError, match="No space left"):
            await handoff.deliver([event(1)])
        await handoff.deliver([event(2)])
        await handoff.close()

    asyncio.run(scenario())
    cut, whole = path.read_bytes().splitlines()
    assert len(cut) == 7 and json.loads(whole)["id"] == "m2:order.placed:1"


def test_an_unwritable_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(HandoffError, match="cannot append"):
        FileHandoff(tmp_path / "no-such-dir" / "events.jsonl")
    with pytest.raises(AppendError):
        DeadLetterFile(tmp_path / "no-such-dir" / "rejected.jsonl")


def test_dead_letter_records_keep_the_raw_bytes(tmp_path: Path) -> None:
    raw = b"MSH|^~\\&|A|B|C|D|2026||ADT^A99|7|P|2.5\r\xff\xfe"
    rejected = Rejected("mllp:127.0.0.1:5000", "message 2", "unsupported", "MSH|", INVALID)
    record = dead_letter_record(rejected, raw, peer="127.0.0.1:5000", received_at=NOON, ack="AE")
    assert record == {
        "origin": "mllp:127.0.0.1:5000",
        "location": "message 2",
        "kind": "invalid",
        "reason": "unsupported",
        "excerpt": "MSH|",
        "peer": "127.0.0.1:5000",
        "received_at": "2026-03-02T12:00:00+00:00",
        "ack": "AE",
        "size": len(raw),
        "raw_base64": base64.b64encode(raw).decode(),
    }
    big = Rejected("o", "message 3", "too large", "", TOO_LARGE)
    cut = dead_letter_record(big, raw[:10], peer="p", received_at=NOON, ack=None, size=5_000_000)
    assert cut["size"] == 5_000_000 and cut["raw_truncated"] is True and "ack" not in cut

    async def scenario() -> None:
        dead = DeadLetterFile(tmp_path / "rejected.jsonl")
        await dead.write([record, cut])
        await dead.close()

    asyncio.run(scenario())
    lines = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["invalid", "too-large"]
    assert base64.b64decode(lines[0]["raw_base64"]) == raw


# -- Kafka, with a stand-in producer (the real one needs a broker) --------------------


class FakeResult:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.waited = False

    def get(self, timeout: float | None = None) -> Any:
        self.waited = True
        if self.error:
            raise self.error
        return "metadata"


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.results: list[FakeResult] = []
        self.fail_with: Exception | None = None
        self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> FakeResult:
        self.sent.append((topic, key, value))
        result = FakeResult(self.fail_with)
        self.results.append(result)
        return result

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def test_kafka_handoff_waits_for_every_send_and_keys_by_patient() -> None:
    producer = FakeProducer()
    handoff = KafkaHandoff(producer, "carewatch.events.test", timeout=5)
    events = [event(1), event(2, None, session="S-1"), event(3, None)]

    async def scenario() -> None:
        await handoff.deliver(events)
        await handoff.close()

    asyncio.run(scenario())
    assert [(t, k) for t, k, _ in producer.sent] == [
        ("carewatch.events.test", b"P1"),
        ("carewatch.events.test", b"S-1"),
        ("carewatch.events.test", b"m3:order.placed:1"),
    ]
    assert json.loads(producer.sent[0][2] or b"")["id"] == "m1:order.placed:1"
    assert all(r.waited for r in producer.results) and producer.closed
    assert event_key(events[0]) == b"P1"


def test_kafka_handoff_failure_is_a_handoff_error() -> None:
    producer = FakeProducer()
    producer.fail_with = TimeoutError("no answer from the in-sync replicas")
    handoff = KafkaHandoff(producer, timeout=5)

    async def scenario() -> None:
        with pytest.raises(HandoffError, match="Kafka did not take the events"):
            await handoff.deliver([event(1)])

    asyncio.run(scenario())


# -- Kafka away, with several connections: one reconnect at a time, AE for the others ---

WAIT = 20.0  # generous bound on any wait, so a broken handoff fails the test, never hangs it


class GatedFactory:
    """Makes producers the way ``KafkaProducer`` does with the brokers away: the call
    blocks (here until ``gate`` is set, standing for the bootstrap timeout), then fails,
    or with ``succeed`` returns a new ``FakeProducer``. Records what happened, in order."""

    def __init__(self, log: list[str], succeed: bool = False) -> None:
        self.gate = threading.Event()
        self.log = log
        self.succeed = succeed
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.made: list[FakeProducer] = []
        self._lock = threading.Lock()

    def __call__(self) -> FakeProducer:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.gate.wait(WAIT)
            self.log.append("connect ended")
            if not self.succeed:
                raise RuntimeFault("cannot reach Kafka at 127.0.0.1:9: NoBrokersAvailable")
            made = FakeProducer()
            self.made.append(made)
            return made
        finally:
            with self._lock:
                self.in_flight -= 1


def broken_producer() -> FakeProducer:
    producer = FakeProducer()
    producer.fail_with = TimeoutError("no answer from the in-sync replicas")
    return producer


async def until(condition: Callable[[], bool]) -> None:
    """Wait (at most WAIT) until ``condition()``; a bound on a broken handoff, not a
    timing assertion."""
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


def test_while_one_delivery_reconnects_kafka_the_others_are_refused_at_once() -> None:
    # Eight connections with Kafka away: one of them waits for the new producer (up to
    # the timeout), the other seven get their AE without queueing behind it.
    log: list[str] = []
    factory = GatedFactory(log)
    handoff = KafkaHandoff(broken_producer(), timeout=5, reconnect=factory)

    async def deliver(n: int) -> str:
        try:
            await handoff.deliver([event(n)])
        except HandoffError as exc:
            log.append("refused")
            return str(exc)
        return "delivered"

    async def scenario() -> None:
        assert (await deliver(0)).startswith("Kafka did not take the events")  # discarded
        log.clear()
        tasks = [asyncio.create_task(deliver(n)) for n in range(1, 9)]
        await until(lambda: sum(t.done() for t in tasks) == 7)
        assert sum(t.done() for t in tasks) == 7 and factory.in_flight == 1
        factory.gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert sorted(a.split(" ")[0] for a in answers) == ["Kafka"] * 7 + ["cannot"]
        await handoff.close()

    asyncio.run(scenario())
    # the seven were answered before the reconnect ended, which then answered the eighth
    assert log == ["refused"] * 7 + ["connect ended", "refused"]
    assert factory.calls == 1 and factory.most_in_flight == 1


def test_every_connection_waits_on_kafka_at_the_same_time_not_in_turn() -> None:
    # Forty connections whose sends Kafka does not answer: all forty wait at once, so
    # each is answered within one timeout of its message, not after the waits of the
    # connections before it (a shared pool of a few threads made them queue).
    release = threading.Event()
    waiting: list[int] = []

    class Unanswered(FakeResult):
        def get(self, timeout: float | None = None) -> Any:
            waiting.append(1)
            release.wait(WAIT)
            raise TimeoutError("no answer from the in-sync replicas")

    class Silent(FakeProducer):
        def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
            return Unanswered(None)

    handoff = KafkaHandoff(Silent(), timeout=5, senders=40)

    async def scenario() -> None:
        tasks = [asyncio.create_task(handoff.deliver([event(n)])) for n in range(40)]
        await until(lambda: len(waiting) == 40)
        assert len(waiting) == 40
        release.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT)
        assert all(isinstance(o, HandoffError) for o in outcomes)
        await handoff.close()

    asyncio.run(scenario())


def test_close_does_not_wait_for_a_reconnect_and_closes_what_it_makes() -> None:
    log: list[str] = []
    factory = GatedFactory(log, succeed=True)
    handoff = KafkaHandoff(broken_producer(), timeout=5, reconnect=factory)

    async def scenario() -> None:
        with pytest.raises(HandoffError):
            await handoff.deliver([event(0)])  # the producer is discarded
        reconnecting = asyncio.create_task(handoff.deliver([event(1)]))
        await until(lambda: factory.in_flight == 1)
        await handoff.close()
        log.append("closed")
        with pytest.raises(HandoffError, match="closed"):
            await handoff.deliver([event(2)])
        factory.gate.set()
        with pytest.raises(HandoffError, match="closed"):
            await asyncio.wait_for(reconnecting, WAIT)

    asyncio.run(scenario())
    assert log == ["closed", "connect ended"]
    [made] = factory.made
    assert made.closed and made.sent == []  # made after the close: closed, never used
