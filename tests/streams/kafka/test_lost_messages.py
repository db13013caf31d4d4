"""Messages faust did not deliver, without a broker: the worker reads them again, feeds
them in order before the message that revealed the hole, and acknowledges them to faust;
a loss at the very end of a partition is caught up by the periodic look; a loss right
after a restart is no hole in the journal."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from detectors.rules import load_settings
from streams.kafka import app as app_module
from streams.kafka.app import Runtime
from streams.kafka.config import KafkaConfig, Topics

TOPIC = "t.events"


def order(n: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"E{n}",
            "type": "order.placed",
            "time": f"2026-03-02T09:{n:02d}:00+00:00",
            "patient": f"P{n}",
            "refs": {"order": f"O{n}"},
            "attrs": {"priority": "routine"},
        }
    )


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    value = order(offset)
    return ConsumerRecord(
        TOPIC, 0, offset, 0, 0, f"P{offset}".encode(), value, None, 2, len(value), ()
    )


class FakeApp:
    """What ``Runtime`` uses of a faust app, recording what it is asked to do."""

    def __init__(self, highwater: int = 0) -> None:
        self.sent: list[str] = []
        self.acked: list[int] = []
        self.rebalancing = False
        self.producer = SimpleNamespace(send=self._send)
        self.consumer = SimpleNamespace(
            ack=lambda m: self.acked.append(m.offset),
            highwater=lambda tp: highwater,
            assignment=lambda: {TP(TOPIC, 0)},
        )

    async def _send(self, topic: str, *args: Any) -> None:
        self.sent.append(topic)

    def topic(self, name: str, **kwargs: Any) -> str:
        return name

    def Table(self, name: str, **kwargs: Any) -> Any:  # faust's name
        return SimpleNamespace(
            data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: f"{name}-log")
        )


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Ranges read from the 'broker' (``read_range`` replaced by a log in memory)."""
    asked: list[tuple[int, int]] = []

    async def read_range(config: Any, topic: str, p: int, start: int, stop: int) -> list[Any]:
        assert (topic, p) == (TOPIC, 0)
        asked.append((start, stop))
        return [record(o) for o in range(start, stop)]

    monkeypatch.setattr(app_module, "read_range", read_range)
    return asked


def runtime(app: FakeApp) -> Runtime:
    config = KafkaConfig(topics=Topics(events=TOPIC), partitions=1)
    rt = Runtime(app, config, load_settings(None), 600.0)  # type: ignore[arg-type]
    rt.states[("events", 0)] = rt._new("events", 0)
    return rt


def test_a_hole_is_read_again_and_fed_in_order(reads: list[tuple[int, int]]) -> None:
    app = FakeApp()
    rt = runtime(app)
    asyncio.run(rt._process("events", 0, rt.states[("events", 0)], [record(0), record(1)]))
    # faust delivers 5 after 1 (and 1 again): 2 to 4 come from the broker first
    st = rt.states[("events", 0)]
    asyncio.run(rt._process("events", 0, st, [record(1), record(5), record(6)]))
    assert reads == [(2, 5)]
    assert [e.offset for e in st.entries] == [0, 1, 2, 3, 4, 5, 6]
    assert st.last_offset == 6
    assert app.acked == [2, 3, 4]  # faust's own messages are acknowledged by faust


def test_a_loss_at_the_end_is_caught_up_once_the_partition_stands_still(
    reads: list[tuple[int, int]],
) -> None:
    app = FakeApp(highwater=4)  # the broker has offsets 0 to 3
    rt = runtime(app)
    st = rt.states[("events", 0)]
    asyncio.run(rt._process("events", 0, st, [record(0), record(1)]))
    asyncio.run(rt.catch_up())  # first look: no earlier position to compare with
    assert reads == []
    asyncio.run(rt.catch_up())  # still at 1 while 2 and 3 exist: read them
    assert reads == [(2, 4)]
    assert st.last_offset == 3 and app.acked == [2, 3]
    asyncio.run(rt.catch_up())
    asyncio.run(rt.catch_up())
    assert reads == [(2, 4)]  # nothing missing any more


def test_a_loss_right_after_a_restart_resumes_from_the_committed_offset(
    reads: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_ledger(config: Any, partition: int) -> dict[str, str]:
        return {}

    monkeypatch.setattr(app_module, "read_published_failures", no_ledger)
    app = FakeApp()
    before = runtime(app)
    asyncio.run(before._process("events", 0, before.states[("events", 0)], [record(0), record(1)]))
    # a restart: the journal (0 and 1) is back in the table, the group committed offset 2,
    # and faust loses message 2, delivering 3 first. The journal ends where the committed
    # offset says, so this is no hole: 2 is read from the broker and nothing is lost.
    config = KafkaConfig(topics=Topics(events=TOPIC), partitions=1)
    after = Runtime(app, config, load_settings(None), 600.0)  # type: ignore[arg-type]
    after.tables["events"].data.update(before.tables["events"].data)
    app.consumer._committed_offset = {TP(TOPIC, 0): 2}  # what faust read on assignment
    asyncio.run(after.handle("events", [SimpleNamespace(message=record(3))]))
    st = after.states[("events", 0)]
    assert reads == [(2, 3)]
    assert [e.offset for e in st.entries] == [0, 1, 2, 3]
    assert app.acked == [2]
