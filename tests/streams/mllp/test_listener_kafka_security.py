"""The listener's Kafka handoff takes the same SSL/SASL settings as the worker and the
publisher (``--kafka-config FILE`` and the ``CAREWATCH_KAFKA_*`` variables), and never
prints the password."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import kafka
import pytest
from kafka.errors import KafkaConnectionError

from streams.cli import main

SECRET = "s3cret-never-printed"


class RecordingProducer:
    """Stands in for ``kafka.KafkaProducer``: keeps its settings, then fails to connect
    (so the command ends at once with its one-line error)."""

    seen: ClassVar[dict[str, Any]] = {}
    DEFAULT_CONFIG = kafka.KafkaProducer.DEFAULT_CONFIG

    def __init__(self, **settings: Any) -> None:
        RecordingProducer.seen = settings
        raise KafkaConnectionError("no broker answered")


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> type[RecordingProducer]:
    monkeypatch.setattr(kafka, "KafkaProducer", RecordingProducer)
    RecordingProducer.seen = {}
    for var in ("BOOTSTRAP", "SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME"):
        monkeypatch.delenv(f"CAREWATCH_KAFKA_{var}", raising=False)
    return RecordingProducer


def listen(tmp_path: Path, *args: str) -> int:
    return main(["listen", "mllp", "--port", "0", "--rejected", str(tmp_path / "r.jsonl"), *args])


def test_sasl_ssl_settings_from_a_config_file_and_the_environment_reach_the_producer(
    tmp_path: Path,
    recording: type[RecordingProducer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until connecting\n")
    config = tmp_path / "kafka.yaml"
    config.write_text(
        "kafka_bootstrap: broker1:9093,broker2:9093\n"
        "kafka_security_protocol: SASL_SSL\n"
        f"kafka_ssl_cafile: {ca}\n"
        "kafka_sasl_mechanism: SCRAM-SHA-512\n"
        "kafka_sasl_username: mllp-listener\n"
        "topic_events: site.events\n"
    )
    monkeypatch.setenv("CAREWATCH_KAFKA_SASL_PASSWORD", SECRET)
    assert listen(tmp_path, "--kafka-config", str(config)) == 2
    seen = recording.seen
    assert seen["bootstrap_servers"] == ["broker1:9093", "broker2:9093"]
    assert seen["security_protocol"] == "SASL_SSL"
    assert seen["ssl_cafile"] == str(ca)
    assert seen["sasl_mechanism"] == "SCRAM-SHA-512"
    assert seen["sasl_plain_username"] == "mllp-listener"
    assert seen["sasl_plain_password"] == SECRET
    assert seen["acks"] == "all" and seen["enable_idempotence"] is True
    err = capsys.readouterr().err
    assert "cannot reach Kafka at broker1:9093,broker2:9093" in err and SECRET not in err


def test_the_environment_alone_configures_ssl(
    tmp_path: Path, recording: type[RecordingProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("x\n")
    key.write_text("x\n")
    monkeypatch.setenv("CAREWATCH_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("CAREWATCH_KAFKA_SSL_CERTFILE", str(cert))
    monkeypatch.setenv("CAREWATCH_KAFKA_SSL_KEYFILE", str(key))
    assert listen(tmp_path, "--kafka-bootstrap", "broker:9093") == 2
    seen = recording.seen
    assert seen["security_protocol"] == "SSL"
    assert (seen["ssl_certfile"], seen["ssl_keyfile"]) == (str(cert), str(key))


def test_unusable_security_settings_are_named_one_line_each(
    tmp_path: Path,
    recording: type[RecordingProducer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CAREWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    assert listen(tmp_path, "--kafka-bootstrap", "broker:9093") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # both problems at once, no traceback; the one the variable caused names it
    assert len(lines) == 2 and lines[0].startswith("carewatch listen: error: ")
    assert "kafka_sasl_mechanism must be one of" in lines[0]
    assert lines[1].startswith("$CAREWATCH_KAFKA_SECURITY_PROTOCOL: kafka_sasl_username")
    assert recording.seen == {}  # refused before any connection


def test_a_kafka_config_with_out_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kafka.yaml"
    config.write_text("kafka_bootstrap: broker:9092\n")
    assert listen(tmp_path, "--out", str(tmp_path / "e.jsonl"), "--kafka-config", str(config)) == 2
    assert "--kafka-config" in capsys.readouterr().err
