"""Publishing event files to the events topic (kafka-python producer)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError

from detectors.errors import ConfigError
from detectors.events import Event
from streams.deadletter import Rejected
from streams.kafka.config import KafkaConfig
from streams.kafka.wire import control_message, event_key, rejected_value

__all__ = ["PublishStats", "make_producer", "publish_control", "publish_events"]


@dataclass
class PublishStats:
    """What a publish run did."""

    events: int = 0
    rejected: int = 0
    seconds: float = 0.0


def make_producer(config: KafkaConfig) -> KafkaProducer:
    """An idempotent ``acks=all`` producer: retries never duplicate or reorder."""
    try:
        return KafkaProducer(
            client_id="carewatch-publish",
            enable_idempotence=True,
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
            **config.kafka_python_kwargs(),
        )
    except KafkaError as exc:
        raise ConfigError(f"cannot reach Kafka at {config.bootstrap}: {exc}") from None


def publish_events(
    producer: KafkaProducer,
    config: KafkaConfig,
    records: Iterable[Event | Rejected],
    progress: Callable[[PublishStats], None] | None = None,
    every: float = 2.0,
) -> PublishStats:
    """Send events (canonical JSON, keyed by patient, else session, else id) to the
    events topic and rejected records to the rejected topic. ``progress`` is called
    about every ``every`` seconds."""
    import orjson

    stats = PublishStats()
    started = time.monotonic()
    next_report = started + every
    events_topic, rejected_topic = config.topics.events, config.topics.rejected
    dumps = orjson.dumps
    send = producer.send
    for rec in records:
        if type(rec) is Event:
            obj = rec.to_dict()
            send(events_topic, key=event_key(obj), value=dumps(obj))
            stats.events += 1
        else:
            assert isinstance(rec, Rejected)
            send(rejected_topic, value=rejected_value(rec))
            stats.rejected += 1
        if progress is not None and (stats.events & 0x3FF) == 0:
            now = time.monotonic()
            if now >= next_report:
                stats.seconds = now - started
                progress(stats)
                next_report = now + every
    producer.flush()
    stats.seconds = time.monotonic() - started
    return stats


def publish_control(producer: KafkaProducer, config: KafkaConfig, kind: str, at: float) -> int:
    """Send one control message of ``kind`` with time ``at`` (epoch seconds, UTC) to every
    partition of the events topic; returns how many partitions got it."""
    parts = producer.partitions_for(config.topics.events)
    if not parts:
        raise ConfigError(f"topic {config.topics.events} does not exist; run carewatch kafka init")
    value, headers = control_message(kind, at)
    for p in sorted(parts):
        producer.send(config.topics.events, value=value, partition=p, headers=list(headers))
    producer.flush()
    return len(parts)
