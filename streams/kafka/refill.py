"""Messages the faust consumer lost, read again straight from the broker.

faust-streaming 0.15 loses messages across a rebalance. On revocation it clears the
agents' queues of fetched but unprocessed messages, counting on fetching them again from
the committed offset once the partitions are assigned; but its fetch loop drops every
record below a per-partition read offset ("DROPPED MESSAGE ROFF"), and the fetch it was
handing over when the rebalance began has already moved that offset past the cleared
messages. The stream then carries on after a hole.

Seeking faust's consumer back does not cure it: the records of the fetch in hand move the
read offset forward again right after the seek, and the re-fetched records are dropped
once more. So the worker reads a missing range itself, with a plain client of its own,
and processes it in order before the message that revealed the hole.
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from detectors.errors import RuntimeFault
from streams.kafka.config import KafkaConfig

__all__ = ["committed_offset", "read_range"]


async def read_range(
    config: KafkaConfig, topic: str, partition: int, start: int, stop: int, timeout: float = 60.0
) -> list[Any]:
    """The records of ``topic[partition]`` from offset ``start`` up to (not including)
    ``stop``, in offset order (aiokafka ``ConsumerRecord``s). Fewer than ``stop - start``
    only if retention deleted some. Raises ``RuntimeFault`` when the broker does not hand
    them over within ``timeout`` seconds."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # offsets deleted meanwhile: start at the oldest left
        client_id=f"{config.group_id}-refill",
        **config.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while (position := await consumer.position(tp)) < stop:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeFault(
                    f"{topic}[{partition}]: could not read offsets {position:,} to "
                    f"{stop - 1:,} again within {timeout:.0f} s; is the broker reachable?"
                )
            batch = await consumer.getmany(
                tp, timeout_ms=int(min(left, 1.0) * 1000), max_records=stop - position
            )
            out.extend(r for r in batch.get(tp, []) if r.offset < stop)
        return out
    finally:
        await consumer.stop()


async def committed_offset(config: KafkaConfig, topic: str, partition: int) -> int | None:
    """The offset the worker group has committed for ``topic[partition]`` (the next to
    read), asked of the group coordinator itself; ``None`` when the group has none.
    (faust's own copy is filled in when the partition is assigned and emptied when it is
    revoked, and a batch can arrive in between: it then read as "no commit".) The
    client fetches offsets only; it never joins the group."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        group_id=config.group_id,
        enable_auto_commit=False,
        client_id=f"{config.group_id}-offsets",
        **config.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        offset = await consumer.committed(tp)
    finally:
        await consumer.stop()
    return None if offset is None or offset < 0 else int(offset)
