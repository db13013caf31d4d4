"""Following an output topic in the terminal: one readable line per record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
from kafka import KafkaConsumer
from kafka.errors import KafkaError

from detectors.errors import RuntimeFault
from streams.kafka.config import KafkaConfig

__all__ = ["follow", "format_record"]


def format_record(kind: str, key: bytes | None, value: bytes | None) -> str:
    """``time  detector  status  key  summary`` for failures and outcomes;
    ``origin:location  kind  reason`` for rejected records."""
    try:
        rec: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return f"(not JSON) {(value or b'')[:200]!r}"
    if not isinstance(rec, dict):
        return str(rec)
    if kind == "rejected":
        return f"{rec.get('origin')}:{rec.get('location')}  {rec.get('kind')}  {rec.get('reason')}"
    status = rec.get("status") or rec.get("outcome")
    k = key.decode("utf-8", "replace") if key else rec.get("failure_id")
    return "  ".join(
        str(x)
        for x in (
            rec.get("detected_at"),
            rec.get("detector"),
            status,
            k,
            rec.get("summary", ""),
        )
    )


def follow(
    config: KafkaConfig,
    topic: str,
    *,
    from_beginning: bool,
    idle_timeout: float | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Yield ``(key, value)`` of new records of ``topic`` (all records with
    ``from_beginning``). Stops after ``idle_timeout`` seconds without a record if set.
    An unreachable broker is a ``RuntimeFault`` (one line for the user, no traceback)."""
    try:
        consumer = _consumer(config, topic, from_beginning, idle_timeout)
    except KafkaError as exc:
        raise RuntimeFault(f"cannot reach Kafka at {config.bootstrap}: {exc}") from None
    try:
        for msg in consumer:
            yield msg.key, msg.value
            if stop():
                return
    except KafkaError as exc:
        raise RuntimeFault(f"lost Kafka at {config.bootstrap}: {exc}") from None
    finally:
        consumer.close()


def _consumer(
    config: KafkaConfig, topic: str, from_beginning: bool, idle_timeout: float | None
) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        consumer_timeout_ms=int(idle_timeout * 1000) if idle_timeout else float("inf"),
        **config.kafka_python_kwargs(),
    )
