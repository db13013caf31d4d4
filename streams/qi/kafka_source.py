"""The outcome ledger from Kafka: the outcomes topic read from its start to its current end.

The topic is at least once (a record can repeat after a worker crash) and compacted by
``failure_id``; the records are written, as they are, to a JSON Lines file that
``streams.qi.ledger`` then reads latest-wins like any other ledger file. Reading stops
at the end offsets the topic had when reading began, so a live topic does not keep the
command waiting.
"""

from __future__ import annotations

import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from detectors.errors import RuntimeFault
from streams.kafka.config import KafkaConfig

__all__ = ["copy_outcomes_topic"]


def copy_outcomes_topic(config: KafkaConfig, path: Path, *, timeout: float = 60.0) -> int:
    """Copy every record of ``config.topics.outcomes`` up to its end offsets into ``path``
    (one JSON value a line); returns how many. ``timeout`` (seconds) bounds the wait for
    a broker that stops answering."""
    topic = config.topics.outcomes
    try:
        consumer = KafkaConsumer(
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
        deadline = time.monotonic() + timeout
        copied = 0
        with path.open("wb") as out:
            while any(consumer.position(tp) < ends[tp] for tp in assigned):
                if time.monotonic() > deadline:
                    raise RuntimeFault(
                        f"reading {topic} at {config.bootstrap} took over {timeout:.0f} s"
                    )
                for records in consumer.poll(timeout_ms=500).values():
                    for rec in records:
                        if rec.value:
                            out.write(rec.value.rstrip(b"\n") + b"\n")
                            copied += 1
        return copied
    except KafkaError as exc:
        raise RuntimeFault(f"reading {topic} at {config.bootstrap} failed: {exc}") from None
    finally:
        consumer.close()
