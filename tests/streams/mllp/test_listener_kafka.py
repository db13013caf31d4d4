"""The listener handing events to a real Kafka broker (``deploy/kafka/broker``)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from detectors.errors import RuntimeFault
from streams.mllp.kafka_handoff import KafkaHandoff

from .support import Client, listening, sample

pytestmark = pytest.mark.kafka


def consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, dict[str, object]]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"cw-mllp-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=20_000,
    )
    try:
        out = []
        for record in consumer:
            out.append((record.key, json.loads(record.value)))
            if len(out) == count:
                break
        return out
    finally:
        consumer.close()


def test_events_are_on_the_topic_before_the_aa(tmp_path: Path, kafka_bootstrap: str) -> None:
    topic = f"cw-mllp-test-{uuid.uuid4().hex[:8]}"
    handoff = KafkaHandoff.connect(kafka_bootstrap, topic, timeout=30)

    async def scenario() -> None:
        async with listening(tmp_path, handoff=handoff) as running:
            client = await Client.connect(running.port)
            assert (await client.exchange(sample("SIU-S12-01.hl7"))).code == "AA"
            assert (await client.exchange(sample("LAB-ORU-1.hl7"))).code == "AA"
            assert (await client.exchange(b"MSH|^~\\&|x")).code in ("AE", "AR")
            await client.close()
            assert running.metric("carewatch_mllp_events_handed_on_total") == 3

    asyncio.run(scenario())
    records = consume(kafka_bootstrap, topic, 3)
    assert [(key, value["id"]) for key, value in records] == [
        (b"PATID1234", "MSG00012:appointment.booked:1"),
        (b"10006579", "182:result.reported:1"),
        (b"10006579", "182:result.reported:2"),
    ]
    booked = records[0][1]
    assert booked["refs"] == {"appointment": "36996"} and booked["type"] == "appointment.booked"


def test_an_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(RuntimeFault, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        KafkaHandoff.connect("127.0.0.1:1", timeout=1)
