"""The Kafka store sink when the broker is away as it commits: no broker needed, a
stand-in consumer whose commits fail while "the broker restarts"."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kafka.errors import KafkaConnectionError
from kafka.structs import TopicPartition

from streams.store import WorklistQuery, open_store
from streams.store.sink import KafkaStoreSink
from tests.streams.store.support import line, record

TP = TopicPartition("carewatch.failures", 0)


class Consumer:
    """Hands out ``batches`` one poll at a time; its commits fail while ``away``."""

    def __init__(self, batches: list[list[bytes]]) -> None:
        self.batches = batches
        self.offset = 0
        self.away = False
        self.committed: list[int] = []

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        if not self.batches:
            return {}
        values = self.batches.pop(0)
        out = [SimpleNamespace(value=v, offset=self.offset + i) for i, v in enumerate(values)]
        self.offset += len(values)
        return {TP: out}

    def commit(self, offsets: dict[Any, Any]) -> None:
        if self.away:
            raise KafkaConnectionError("111 ECONNREFUSED")
        self.committed.append(offsets[TP].offset)

    def assignment(self) -> set[Any]:
        return {TP}


def test_offsets_the_broker_refused_are_committed_once_it_is_back(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"), create=True)
    consumer = Consumer([[line(record(n))] for n in range(3)])
    lines: list[str] = []
    sink = KafkaStoreSink(consumer, store, report=lines.append)
    consumer.away = True  # the broker restarts while the first batch is committed
    assert sink.poll_once() == 1
    assert consumer.committed == [] and any("committing offsets failed" in x for x in lines)
    consumer.away = False
    assert sink.poll_once() == 1  # the next commit carries the first batch's offset too
    assert consumer.committed == [2]
    consumer.away = True
    assert sink.poll_once() == 1
    consumer.away = False
    counts = sink.run(stop=lambda: bool(consumer.committed[-1:] == [3]), idle_exit=5.0)
    assert consumer.committed == [2, 3]  # sent while idle, not lost with the sink
    assert counts.text()
    assert store.worklist(WorklistQuery(state="all", per_page=10)).total == 3
