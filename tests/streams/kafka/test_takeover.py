"""A partition taken over by another worker resumes at the group's committed offset,
and a second worker joining a busy one takes its partitions over cleanly: no failure
repeated, no partition read again from its start, metrics that agree with the group's
committed offsets (real broker)."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from streams.kafka.app import Runtime
from streams.kafka.config import load_config
from streams.kafka.refill import committed_offset
from streams.synthetic import DeliveryFaults, GeneratorConfig, deliver, generate
from tests.streams.kafka.harness import Setup, embedded

pytestmark = pytest.mark.kafka


def _topic_with_commit(bootstrap: str, group: str, offset: int | None) -> str:
    topic = f"takeover-{uuid.uuid4().hex[:10]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(12):
        producer.send(topic, value=b"%d" % i, partition=0)
    producer.flush()
    producer.close()
    if offset is not None:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        consumer.assign([TopicPartition(topic, 0)])
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)})
        consumer.close()
    return topic


def test_committed_offset_is_the_groups(kafka_bootstrap: str) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    config = load_config(None, {}, kafka_bootstrap=kafka_bootstrap, group_id=group)
    committed = _topic_with_commit(kafka_bootstrap, group, 9)
    never = _topic_with_commit(kafka_bootstrap, group, None)
    assert asyncio.run(committed_offset(config, committed, 0)) == 9
    assert asyncio.run(committed_offset(config, never, 0)) is None


def test_resume_uses_the_groups_commit_when_fausts_copy_is_empty(kafka_bootstrap: str) -> None:
    # Between a revocation and faust's reading of the new assignment's offsets, faust's
    # copy of the committed offsets is empty. A batch arriving then was taken to mean
    # "no commit", so the partition was read again from offset 0 and its journal dropped.
    group = f"g-{uuid.uuid4().hex[:8]}"
    config = load_config(None, {}, kafka_bootstrap=kafka_bootstrap, group_id=group)
    topic = _topic_with_commit(kafka_bootstrap, group, 9)

    async def log_start(kind: str, p: int) -> int:
        return 0

    runtime: Any = SimpleNamespace(
        topic_names={"events": topic},
        config=config,
        app=SimpleNamespace(consumer=SimpleNamespace(_committed_offset={})),
        _log_start=log_start,
    )
    resume = asyncio.run(Runtime._resume_offset(runtime, "events", 0, 11))
    assert resume == 9
    assert TP(topic, 0) not in runtime.app.consumer._committed_offset


@pytest.fixture
def setup(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Setup]:
    s = Setup(kafka_bootstrap, tmp_path, partitions=3)
    try:
        yield s
    finally:
        s.stop()


def test_a_second_worker_joining_a_busy_one_hands_over_cleanly(setup: Setup) -> None:
    gen = generate(GeneratorConfig(days=28, seed=31, scale="small"))
    faults = DeliveryFaults(shuffle_within=600.0, duplicates=0.02)
    lines = list(deliver(gen.records, faults, seed=31))
    as_of = max(t for t, _, _ in gen.records) + 60 * 86400.0
    expected = embedded(lines, as_of)
    quarter = len(lines) // 4
    setup.publish(lines[:quarter], "first.jsonl")
    metrics_ports = (_free_port(), _free_port())
    setup.start_worker("--replay", "--metrics-port", str(metrics_ports[0]))
    setup.wait_for("first outcomes", lambda: len(setup.read("outcomes", idle=0.3)) > 300, every=0.1)
    setup.start_worker("--replay", "--metrics-port", str(metrics_ports[1]))
    # traffic goes on while the second worker joins and the partitions move
    rest = lines[quarter:]
    step = len(rest) // 12 + 1
    for n, at in enumerate(range(0, len(rest), step)):
        setup.publish(rest[at : at + step], f"more{n}.jsonl")
        time.sleep(1.5)
    setup.advance(as_of)
    setup.wait_for_outputs(expected, timeout=300)
    # failures: never twice (the ledger). Outcomes: never twice either. A record repeats
    # only when a partition moves before its processed offsets are committed: after a
    # crash, or with a batch in progress. In a clean join faust waits for the batches in
    # flight before it revokes, and the worker then commits each revoked partition's
    # processed offsets (faust itself would drop them: about 1,900 outcomes repeated).
    seen = Counter((r["failure_id"], r["status"]) for _, r in setup.read("failures"))
    assert not {k: n for k, n in seen.items() if n > 1}
    outcomes = Counter((r["failure_id"], r["outcome"]) for _, r in setup.read("outcomes"))
    assert not {k: n for k, n in outcomes.items() if n > 1}
    # the partitions moved on at the group's committed offsets, never from the start
    logs = setup.logs()
    assert "committed offset 0," not in logs

    # The metrics tell the truth the group sees: once the group has committed every
    # message, no worker reports lag or uncommitted messages.
    group = setup.env["CAREWATCH_GROUP_ID"]
    tps = [TopicPartition(setup.topics["events"], p) for p in range(3)]
    reader = KafkaConsumer(
        bootstrap_servers=setup.bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        ends = reader.end_offsets(tps)
        setup.wait_for(
            "the group to commit everything",
            lambda: all(reader.committed(tp) == ends[tp] for tp in tps),
            timeout=60,
        )
    finally:
        reader.close()
    scraped = [_scrape(port) for port in metrics_ports]
    lag = [v for text in scraped for v in _values(text, "carewatch_kafka_lag_messages")]
    pending = [v for text in scraped for v in _values(text, "carewatch_kafka_uncommitted_messages")]
    assert len(lag) == len(pending) == 6  # every events and sessions partition, once
    assert sum(lag) == 0 and sum(pending) == 0


def _free_port() -> int:
    """A port free on 127.0.0.1 now, for a worker's metrics (fixed ports clash when
    several test runs share the machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def _values(text: str, name: str) -> list[float]:
    return [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    ]
