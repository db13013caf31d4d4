"""Reading the outcomes topic gives up only on a broker that stops answering, never on
one that is still delivering: a stand-in consumer (no broker) on a stand-in clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from detectors.errors import RuntimeFault
from streams.cli import main
from streams.kafka.config import load_config
from streams.qi import kafka_source
from streams.qi.kafka_source import copy_outcomes_topic


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Record:
    def __init__(self, value: bytes) -> None:
        self.value = value


class _Consumer:
    """One partition of ``total`` records; each poll takes ``step`` seconds of the
    clock and delivers the next record, until ``stall_after`` records (then nothing)."""

    def __init__(self, clock: _Clock, total: int, step: float, stall_after: int | None) -> None:
        self.clock, self.total, self.step, self.stall_after = clock, total, step, stall_after
        self.pos = 0
        self.closed = False

    def partitions_for_topic(self, topic: str) -> set[int]:
        self.topic = topic
        return {0}

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.tp = partitions[0]

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.pos = 0

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {self.tp: self.total}

    def position(self, tp: TopicPartition) -> int:
        return self.pos

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[_Record]]:
        self.clock.now += self.step
        if self.stall_after is not None and self.pos >= self.stall_after:
            return {}
        self.pos += 1
        return {self.tp: [_Record(b'{"n": %d}' % self.pos)]}

    def close(self) -> None:
        self.closed = True


def _copy(tmp_path: Path, consumer: _Consumer, clock: _Clock, idle: float) -> int:
    config = load_config(None, kafka_bootstrap="127.0.0.1:1")
    return copy_outcomes_topic(
        config,
        tmp_path / "copy.jsonl",
        idle_timeout=idle,
        consumer_factory=lambda **_: consumer,
        clock=clock,
    )


def test_a_topic_still_arriving_is_read_to_its_end_past_the_idle_limit(tmp_path: Path) -> None:
    clock = _Clock()
    # 40 records, one every 5 s: 200 s in all, far past a 60 s idle limit
    consumer = _Consumer(clock, total=40, step=5.0, stall_after=None)
    assert _copy(tmp_path, consumer, clock, idle=60.0) == 40
    assert clock.now - 1000.0 >= 200.0
    assert len((tmp_path / "copy.jsonl").read_text().splitlines()) == 40
    assert consumer.closed


def test_a_broker_that_stops_answering_times_out_after_the_idle_limit(tmp_path: Path) -> None:
    clock = _Clock()
    consumer = _Consumer(clock, total=40, step=5.0, stall_after=10)
    with pytest.raises(RuntimeFault, match=r"nothing arrived for 30 s with 30 records still"):
        _copy(tmp_path, consumer, clock, idle=30.0)
    # it waited the idle limit after the last record, not less
    assert clock.now - 1000.0 >= 10 * 5.0 + 30.0
    assert consumer.closed


def test_the_idle_limit_is_an_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def fake_copy(config: object, path: Path, *, idle_timeout: float) -> int:
        seen["idle"] = idle_timeout
        path.write_text("")
        return 0

    monkeypatch.setattr(kafka_source, "copy_outcomes_topic", fake_copy)
    args = ["qi", "measures", "--kafka", "--bootstrap", "127.0.0.1:1"]
    assert main([*args, "--kafka-idle-timeout", "7.5"]) == 0
    assert seen["idle"] == 7.5
    assert main(args) == 0
    assert seen["idle"] == 60.0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--kafka-idle-timeout", "0"])
    assert exit_.value.code == 2 and "above 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["qi", "measures", "--help"])
    assert "--kafka-idle-timeout" in capsys.readouterr().out
