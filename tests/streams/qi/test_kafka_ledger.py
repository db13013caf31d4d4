"""`carewatch qi ... --kafka`: the outcomes topic of a real broker, read latest-wins."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.cli import main

pytestmark = pytest.mark.kafka


def test_the_topic_gives_the_same_measures_as_the_files(
    kafka_bootstrap: str, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"qi-outcomes-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()
    lines = (run_dir / "outcomes.jsonl").read_bytes().splitlines()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec.get("amended_from") == "missed":
            # the worker publishes the missed record first, and the amendment later
            earlier = dict(rec, outcome="missed", detected_at=rec["due_at"])
            del earlier["amended_from"]
            producer.send(topic, key=rec["failure_id"].encode(), value=json.dumps(earlier).encode())
        producer.send(topic, key=rec["failure_id"].encode(), value=line)
        if i % 50 == 0:  # at least once: some records repeated
            producer.send(topic, key=rec["failure_id"].encode(), value=line)
    producer.flush()
    producer.close()

    monkeypatch.setenv("CAREWATCH_TOPIC_OUTCOMES", topic)
    from_topic, from_files = tmp_path / "topic.csv", tmp_path / "files.csv"
    args = ["qi", "measures", "--kafka", "--bootstrap", kafka_bootstrap, "--out", str(from_topic)]
    assert main(args) == 0
    assert main(["qi", "measures", str(run_dir / "outcomes.jsonl"), "--out", str(from_files)]) == 0
    topic_frame, file_frame = pd.read_csv(from_topic), pd.read_csv(from_files)
    # the horizon is the same, so complete/small marks match too
    pd.testing.assert_frame_equal(topic_frame, file_frame)


def test_a_missing_topic_is_one_line(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAREWATCH_TOPIC_OUTCOMES", f"no-such-{uuid.uuid4().hex[:8]}")
    assert main(["qi", "measures", "--kafka", "--bootstrap", kafka_bootstrap]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and "\n" not in err
