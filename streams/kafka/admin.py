"""Topic set-up with kafka-python's admin client (idempotent)."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from detectors.errors import ConfigError
from streams.kafka.config import KafkaConfig

__all__ = ["create_topics", "topic_specs"]

#: Records keyed by failure_id where the latest wins: compaction keeps exactly that.
_COMPACT = {"cleanup.policy": "compact"}


def topic_specs(config: KafkaConfig) -> list[NewTopic]:
    """The topics the runtime needs, all with ``config.partitions`` partitions: outputs
    are written to the partition of the input they come from, so they need as many."""
    t = config.topics
    spec = {
        t.events: {},
        t.outcomes: _COMPACT,
        t.failures: _COMPACT,
        t.rejected: {},
        t.sessions: {},
    }
    return [
        NewTopic(
            name,
            num_partitions=config.partitions,
            replication_factor=config.replication_factor,
            topic_configs=dict(conf),
        )
        for name, conf in spec.items()
    ]


def create_topics(config: KafkaConfig, timeout: float = 30.0) -> dict[str, str]:
    """Create the missing topics; returns ``name -> "created" | "exists"``.
    ``timeout`` is in seconds."""
    try:
        admin = KafkaAdminClient(
            client_id="carewatch-init",
            request_timeout_ms=int(timeout * 1000),
            **config.kafka_python_kwargs(),
        )
    except KafkaError as exc:
        raise ConfigError(f"cannot reach Kafka at {config.bootstrap}: {exc}") from None
    try:
        existing = set(admin.list_topics())
        result: dict[str, str] = {}
        for spec in topic_specs(config):
            if spec.name in existing:
                result[spec.name] = "exists"
                continue
            try:
                admin.create_topics([spec], timeout_ms=int(timeout * 1000))
                result[spec.name] = "created"
            except TopicAlreadyExistsError:
                result[spec.name] = "exists"  # created meanwhile by someone else
        return result
    finally:
        admin.close()
