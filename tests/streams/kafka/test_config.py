"""Kafka settings: file, environment and flags in that order; validation; no secrets in
repr or logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.errors import ConfigError
from streams.kafka.config import ENV_NAMES, KafkaConfig, load_config


def test_defaults() -> None:
    c = load_config(env={})
    assert c.topics.events == "carewatch.events"
    assert c.topics.failures == "carewatch.failures"
    assert c.partitions == 6 and c.security_protocol == "PLAINTEXT"


def test_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    f = tmp_path / "kafka.yaml"
    f.write_text(
        "kafka_bootstrap: a:1\npartitions: 3\ntopic_events: from.file\ntick_interval: 2s\n"
    )
    c = load_config(str(f), env={"CAREWATCH_PARTITIONS": "5", "CAREWATCH_KAFKA_BOOTSTRAP": "b:2"})
    assert (c.bootstrap, c.partitions, c.topics.events, c.tick_interval) == (
        "b:2",
        5,
        "from.file",
        2.0,
    )
    c = load_config(str(f), env={"CAREWATCH_KAFKA_BOOTSTRAP": "b:2"}, kafka_bootstrap="c:3")
    assert c.bootstrap == "c:3"


def test_the_password_never_shows() -> None:
    c = load_config(
        env={
            "CAREWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "CAREWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "CAREWATCH_KAFKA_SASL_USERNAME": "carewatch",
            "CAREWATCH_KAFKA_SASL_PASSWORD": "s3cret-Value",
        }
    )
    assert c.sasl_password == "s3cret-Value"
    for text in (repr(c), str(c), f"{c}", f"{c!r}"):
        assert "s3cret-Value" not in text
        assert "sasl_password='***'" in text
    assert c.kafka_python_kwargs()["sasl_plain_password"] == "s3cret-Value"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CAREWATCH_KAFKA_BOOTSTRAP": "nohost"}, "host:port"),
        ({"CAREWATCH_KAFKA_SECURITY_PROTOCOL": "TLS"}, "security_protocol"),
        ({"CAREWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "sasl_mechanism"),
        ({"CAREWATCH_PARTITIONS": "0"}, "partitions"),
        ({"CAREWATCH_PARTITIONS": "many"}, "whole number"),
        ({"CAREWATCH_TICK_INTERVAL": "soon"}, "tick_interval"),
        ({"CAREWATCH_TOPIC_FAILURES": "carewatch.events"}, "the same topic as topic_events"),
    ],
)
def test_bad_settings_are_refused_with_their_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env=env)


def test_checks_across_settings_name_where_each_value_came_from(tmp_path: Path) -> None:
    """Checks made once the file, the environment and the flags are merged still point
    at the line, variable or flag that gave the value, and report every problem."""
    f = tmp_path / "kafka.yaml"
    f.write_text(
        "group_id: carewatch\n"
        "kafka_security_protocol: SASL_SSL\n"
        "topic_events: shared\n"
        "partitions: 3\n"
        "kafka_ssl_cafile: /nowhere/ca.pem\n"
    )
    env = {"CAREWATCH_TOPIC_FAILURES": "shared", "CAREWATCH_KAFKA_SASL_MECHANISM": "MD5"}
    with pytest.raises(ConfigError) as caught:
        load_config(str(f), env=env, kafka_bootstrap="nohost")
    lines = str(caught.value).splitlines()
    assert lines == [
        "the command line: kafka_bootstrap must be host:port[,host:port...], got 'nohost'",
        "$CAREWATCH_KAFKA_SASL_MECHANISM: kafka_sasl_mechanism must be one of "
        "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 with SASL_SSL",
        f"{f}:2: kafka_sasl_username and kafka_sasl_password are needed with SASL_SSL "
        "(set the password in CAREWATCH_KAFKA_SASL_PASSWORD)",
        f"{f}:5: kafka_ssl_cafile /nowhere/ca.pem does not exist or is not a file",
        "$CAREWATCH_TOPIC_FAILURES: topic_failures is 'shared', the same topic as topic_events",
    ]


def test_unknown_setting_in_the_file(tmp_path: Path) -> None:
    f = tmp_path / "kafka.yaml"
    f.write_text("bootstrap: a:1\n")
    with pytest.raises(ConfigError, match="unknown setting 'bootstrap'"):
        load_config(str(f), env={})


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "kafka.md").read_text()
    for name, var in ENV_NAMES.items():
        assert f"`{name}`" in doc and f"`{var}`" in doc, name
    assert isinstance(load_config(env={}), KafkaConfig)


def test_the_worker_producer_is_idempotent(tmp_path: Path) -> None:
    # faust turns idempotence on only inside transactions; without it a send retried
    # across a broker restart can be written twice (a failure record seen twice)
    from detectors.rules import load_settings
    from streams.kafka.app import build_app

    config = KafkaConfig(bootstrap="127.0.0.1:1", data_dir=str(tmp_path))
    app, _ = build_app(config, load_settings(None), replay=True, lateness=600.0)
    extra = app.producer._settings_extra()
    assert extra["enable_idempotence"] is True and extra["acks"] == "all"


def test_the_lateness_from_a_flag_is_in_the_rules_file_range() -> None:
    with pytest.raises(ConfigError, match="allowed_lateness must be from 0s to 30d"):
        load_config(env={}, allowed_lateness=40 * 86400.0)
    assert load_config(env={}, allowed_lateness=600.0).allowed_lateness == 600.0
