"""Reading a range of a partition again, straight from the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from streams.kafka.config import KafkaConfig
from streams.kafka.refill import read_range

pytestmark = pytest.mark.kafka


def test_read_range_returns_exactly_the_asked_offsets_in_order(kafka_bootstrap: str) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}.refill"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for n in range(30):
        producer.send(topic, key=b"k", value=str(n).encode(), partition=1)
    producer.flush()
    producer.close()
    config = KafkaConfig(bootstrap=kafka_bootstrap, group_id=f"{topic}-group")

    records = asyncio.run(read_range(config, topic, 1, 7, 19))
    assert [r.offset for r in records] == list(range(7, 19))
    assert [r.value for r in records] == [str(n).encode() for n in range(7, 19)]
    assert asyncio.run(read_range(config, topic, 1, 29, 30))[0].value == b"29"
