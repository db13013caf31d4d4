"""What was already published on the failures topic, read back on assignment.

Outputs of a partition go to the same partition number of the failures topic, so one
partition is read from its start to its current end. The result maps ``failure_id`` to
the last status published (the topic is compacted: latest per key wins).
"""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka.config import KafkaConfig

__all__ = ["read_published_failures"]


async def read_published_failures(
    config: KafkaConfig, partition: int, timeout: float = 60.0
) -> dict[str, str]:
    """``failure_id -> status`` of every record in ``partition`` of the failures topic.
    ``timeout`` (seconds) bounds the wait for each fetch."""
    tp = TopicPartition(config.topics.failures, partition)
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        client_id=f"{config.group_id}-ledger",
        **config.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out: dict[str, str] = {}
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=int(timeout * 1000), max_records=5000)
            for msg in batch.get(tp, []):
                if msg.key is None or msg.value is None:
                    continue
                try:
                    out[msg.key.decode()] = orjson.loads(msg.value)["status"]
                except (orjson.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                    continue  # not ours: nothing to compare with
        return out
    finally:
        await consumer.stop()
