"""``carewatch kafka sink``: the failures topic into the store, until stopped."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from detectors.errors import ConfigError, RuntimeFault
from streams.kafka.config import KafkaConfig
from streams.store.db import describe_url
from streams.store.sink import KafkaStoreSink
from streams.store.store import open_store

__all__ = ["run_sink"]


def run_sink(
    config: KafkaConfig,
    store_url: str,
    group: str | None,
    idle_exit: float | None,
    batch: int = 5000,
) -> int:
    """Consume ``config.topics.failures`` into the store at ``store_url`` in consumer
    group ``group`` (default: the application id + ``-store-sink``) until SIGTERM/SIGINT,
    or ``idle_exit`` seconds without a record; at most ``batch`` records a transaction."""
    if batch < 1:
        raise ConfigError("--batch must be at least 1")
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    store = open_store(store_url)
    group_id = group or f"{config.group_id}-store-sink"
    try:
        consumer = KafkaConsumer(
            config.topics.failures,
            group_id=group_id,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_poll_records=batch,
            fetch_max_bytes=64 << 20,
            **config.kafka_python_kwargs(),
        )
    except KafkaError as exc:
        store.close()
        raise RuntimeFault(f"cannot reach Kafka at {config.bootstrap}: {exc}") from None
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"carewatch: store sink: {config.topics.failures} -> {describe_url(store_url)} "
        f"(group {group_id})",
        file=sys.stderr,
        flush=True,
    )
    sink = KafkaStoreSink(consumer, store, batch=batch)
    try:
        counts = sink.run(stop=lambda: stopping, idle_exit=idle_exit)
    finally:
        consumer.close(autocommit=False)
        store.close()
    print(f"carewatch: store sink stopped: {counts.text()}", file=sys.stderr)
    return 0
