"""The outcome ledger from Kafka: the outcomes topic read from its start to its current end.

The topic is at least once (a record can repeat after a worker crash) and compacted by
``failure_id``; the records are written, as they are, to a JSON Lines file that
``streams.qi.ledger`` then reads latest-wins like any other ledger file. Reading stops
at the end offsets the topic had when reading began, so a live topic does not keep the
command waiting. A long topic takes as long as it takes: reading gives up only when the
broker has delivered nothing for ``idle_timeout`` seconds (it stopped answering).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from detectors.errors import RuntimeFault
from streams.kafka.config import KafkaConfig

__all__ = ["copy_outcomes_topic"]


def copy_outcomes_topic(
    config: KafkaConfig,
    path: Path,
    *,
    idle_timeout: float = 60.0,
    consumer_factory: Callable[..., Any] | None = None,
    clock: Callable[[], float] | None = None,
) -> int:
    """Copy every record of ``config.topics.outcomes`` up to its end offsets into ``path``
    (one JSON value a line); returns how many. Gives up with a ``RuntimeFault`` when no
    partition's position has moved for ``idle_timeout`` seconds (a broker that stopped
    answering); however long the whole read takes while records keep coming, it goes on.
    ``consumer_factory`` and ``clock`` are seams for tests (a stand-in consumer)."""
    topic = config.topics.outcomes
    clock = clock or time.monotonic
    try:
        consumer = (consumer_factory or KafkaConsumer)(
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **config.kafka_python_kwargs(),
        )
    except KafkaError as exc:
        raise RuntimeFault(f"cannot reach Kafka at {config.bootstrap}: {exc}") from None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeFault(
                f"topic {topic} does not exist at {config.bootstrap}; "
                "`carewatch kafka init` creates it, workers fill it"
            )
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        copied = 0
        progress = clock()  # when a position last moved
        before = {tp: consumer.position(tp) for tp in assigned}
        with path.open("wb") as out:
            while any(before[tp] < ends[tp] for tp in assigned):
                if clock() - progress > idle_timeout:
                    left = sum(ends[tp] - before[tp] for tp in assigned)
                    raise RuntimeFault(
                        f"reading {topic} at {config.bootstrap}: nothing arrived for "
                        f"{idle_timeout:g} s with {left:,} records still to read "
                        "(--kafka-idle-timeout)"
                    )
                for records in consumer.poll(timeout_ms=500).values():
                    for rec in records:
                        if rec.value:
                            out.write(rec.value.rstrip(b"\n") + b"\n")
                            copied += 1
                now = {tp: consumer.position(tp) for tp in assigned}
                if now != before:  # records (or skipped offsets: aborted, compacted) came
                    progress = clock()
                    before = now
        return copied
    except KafkaError as exc:
        raise RuntimeFault(f"reading {topic} at {config.bootstrap} failed: {exc}") from None
    finally:
        consumer.close()
