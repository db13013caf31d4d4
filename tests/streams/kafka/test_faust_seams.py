"""What the worker relies on inside faust, and the consumer's offset bookkeeping.

No broker needed: the faust app is built, never started."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st
from intervaltree import IntervalTree

from detectors.rules import load_settings
from streams.kafka.app import build_app
from streams.kafka.config import KafkaConfig
from streams.kafka.faust_seams import Consumer, IdempotentProducer

TOPIC = TP("events", 0)


def _app(tmp_path: Path) -> Any:
    config = KafkaConfig(bootstrap="127.0.0.1:1", data_dir=str(tmp_path))
    app, _ = build_app(config, load_settings(None), replay=True, lateness=600.0)
    return app


def test_the_private_parts_of_faust_the_worker_uses_are_there(tmp_path: Path) -> None:
    # An upgrade of faust-streaming that renames or reshapes any of these breaks the
    # worker's offset handling silently; this test is where it shows.
    app = _app(tmp_path)
    consumer = app.consumer
    assert type(consumer) is Consumer and app.transport.Producer is IdempotentProducer
    for name, kind in {
        "_acked": list,
        "_acked_index": set,
        "_gap": IntervalTree,
    }.items():
        assert isinstance(getattr(consumer, name)[TOPIC], kind), name
    assert consumer._committed_offset[TOPIC] is None  # "not known", per partition
    assert list(inspect.signature(FaustConsumer._new_offset).parameters) == ["self", "tp"]
    assert list(inspect.signature(FaustConsumer._commit_offsets).parameters)[:2] == [
        "self",
        "offsets",
    ]
    assert inspect.iscoroutinefunction(FaustConsumer._commit_offsets)
    extra = app.producer._settings_extra()
    assert extra["enable_idempotence"] is True and extra["acks"] == "all"


def _consumer(committed: int | None) -> Any:
    from collections import defaultdict

    consumer: Any = object.__new__(Consumer)
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._gap = defaultdict(IntervalTree)
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._committed_offset[TOPIC] = committed
    return consumer


def _ack(consumer: Any, offset: int) -> None:
    # faust's Consumer.ack, for one message of TOPIC
    committed = consumer._committed_offset[TOPIC]
    index = consumer._acked_index[TOPIC]
    if (committed is None or offset >= committed) and offset not in index:
        index.add(offset)
        consumer._acked[TOPIC].append(offset)


def test_offsets_read_again_after_a_rebalance_are_committed_at_once() -> None:
    # The reproduction: faust lost offsets 10-5,009 across a rebalance and noted them as
    # a gap when 5,010 arrived; the worker read them again itself and acknowledged them.
    # faust's own bookkeeping then committed one offset a commit (a second).
    consumer = _consumer(10)
    consumer._gap[TOPIC].addi(11, 5010)
    for offset in range(10, 5020):
        _ack(consumer, offset)
    assert consumer._new_offset(TOPIC) == 5020
    assert FaustConsumer._new_offset(_stock(10), TOPIC) == 12  # faust's: one step


def _stock(committed: int) -> Any:
    consumer = _consumer(committed)
    consumer._gap[TOPIC].addi(11, 5010)
    for offset in range(10, 5020):
        _ack(consumer, offset)
    return consumer


@settings(max_examples=300, deadline=None)
@given(
    committed=st.integers(0, 40),
    marks=st.lists(st.sampled_from(["ack", "gap", "both"]), min_size=1, max_size=80),
    hole=st.one_of(st.none(), st.integers(1, 79)),
    order=st.randoms(use_true_random=False),
)
def test_one_commit_reaches_the_first_offset_nobody_acknowledged(
    committed: int, marks: list[str], hole: int | None, order: Any
) -> None:
    # Offsets from the committed one on are acknowledged by the worker, or are a gap
    # faust noted, or both, in any order; the last is acknowledged; one offset may be
    # missing. One commit must reach the first missing offset (or the end), and the
    # next must not move.
    marks = [*marks, "ack"]
    if hole is not None and hole >= len(marks) - 1:
        hole = None
    consumer = _consumer(committed)
    covered = [(committed + i, mark) for i, mark in enumerate(marks) if i != hole]
    order.shuffle(covered)
    for offset, mark in covered:
        if mark in ("gap", "both"):
            consumer._gap[TOPIC].addi(offset, offset + 1)
            consumer._gap[TOPIC].merge_overlaps()
        if mark in ("ack", "both"):
            _ack(consumer, offset)
    new = consumer._new_offset(TOPIC)
    assert new == committed + (len(marks) if hole is None else hole)
    consumer._committed_offset[TOPIC] = new
    assert consumer._new_offset(TOPIC) is None
