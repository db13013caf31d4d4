"""The Kafka runtime's settings: one typed, validated object read at the edge.

Sources, later winning over earlier: built-in defaults, a YAML file (``--config FILE``,
read by the one configuration reader, ``detectors.config_reader``: values as written,
every problem with its line),
then environment variables named ``CAREWATCH_`` plus the setting's name in capitals
(``CAREWATCH_KAFKA_BOOTSTRAP``, ``CAREWATCH_TOPIC_EVENTS``...; the full list is
``ENV_NAMES`` and ``docs/kafka.md``). Secrets (the SASL password) are kept out of
``repr`` and of every log line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from detectors.config_reader import Reader, did_you_mean, read_file, read_yaml
from detectors.durations import format_duration, parse_duration
from detectors.errors import ConfigError, RulesError
from detectors.rules import ENGINE_DEFAULTS

__all__ = ["ENV_NAMES", "KafkaConfig", "Topics", "load_config"]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_MASK = "***"


@dataclass(frozen=True)
class Topics:
    """Topic names. ``sessions`` is internal: session-relevant events re-keyed by clinic
    session for the ``clinic-overbooked`` detector (see ``docs/kafka.md``)."""

    events: str = "carewatch.events"
    outcomes: str = "carewatch.outcomes"
    failures: str = "carewatch.failures"
    rejected: str = "carewatch.rejected"
    sessions: str = "carewatch.sessions"


@dataclass(frozen=True)
class KafkaConfig:
    """Everything the Kafka commands need. Durations are seconds.

    ``rules`` is the path of the rules file (``None``: built-in defaults);
    ``allowed_lateness`` overrides the rules file's value when set. ``tick_interval`` is
    how often (wall-clock seconds) a live worker moves the watermark of its partitions.
    ``journal_horizon`` (seconds, ``None``: computed from the rules) is how far behind
    the watermark journal entries are kept. ``data_dir`` holds the worker's local files.
    """

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    topics: Topics = field(default_factory=Topics)
    partitions: int = 6
    replication_factor: int = 1
    group_id: str = "carewatch"
    rules: str | None = None
    allowed_lateness: float | None = None
    tick_interval: float = 1.0
    journal_horizon: float | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    data_dir: str = "carewatch-worker-data"

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "sasl_password" and value is not None:
                value = _MASK
            shown.append(f"{f.name}={value!r}")
        return f"KafkaConfig({', '.join(shown)})"

    __str__ = __repr__

    def validate(self) -> KafkaConfig:
        """Raise ``ConfigError`` naming every unusable setting (one line each); returns
        ``self``."""
        found = self.problems()
        if found:
            raise ConfigError("\n".join(message for _, message in found))
        return self

    def problems(self) -> list[tuple[str, str]]:
        """Every unusable setting, as ``(setting name as in the file, message)``."""
        out: list[tuple[str, str]] = []
        if not self.bootstrap or any(
            ":" not in s or not s.rsplit(":", 1)[1].isdigit() for s in self.bootstrap.split(",")
        ):
            out.append(
                (
                    "kafka_bootstrap",
                    f"kafka_bootstrap must be host:port[,host:port...], got {self.bootstrap!r}",
                )
            )
        if self.security_protocol not in SECURITY_PROTOCOLS:
            out.append(
                (
                    "kafka_security_protocol",
                    f"kafka_security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                    f"got {self.security_protocol!r}",
                )
            )
        elif self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                out.append(
                    (
                        "kafka_sasl_mechanism",
                        f"kafka_sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)} "
                        f"with {self.security_protocol}",
                    )
                )
            if not self.sasl_username or self.sasl_password is None:
                out.append(
                    (
                        "kafka_security_protocol",
                        "kafka_sasl_username and kafka_sasl_password are needed with "
                        f"{self.security_protocol} (set the password in "
                        "CAREWATCH_KAFKA_SASL_PASSWORD)",
                    )
                )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                out.append(
                    (f"kafka_{name}", f"kafka_{name} {path} does not exist or is not a file")
                )
        if self.partitions < 1:
            out.append(("partitions", f"partitions must be at least 1, got {self.partitions}"))
        if self.replication_factor < 1:
            out.append(
                (
                    "replication_factor",
                    f"replication_factor must be at least 1, got {self.replication_factor}",
                )
            )
        if not self.group_id:
            out.append(("group_id", "group_id must not be empty"))
        named = {f"topic_{f.name}": getattr(self.topics, f.name) for f in fields(self.topics)}
        seen: dict[str, str] = {}
        for name, topic in named.items():
            if not topic:
                out.append((name, f"{name} must not be empty"))
            elif topic in seen:
                out.append((name, f"{name} is {topic!r}, the same topic as {seen[topic]}"))
            else:
                seen[topic] = name
        if self.tick_interval <= 0:
            out.append(
                ("tick_interval", f"tick_interval must be positive, got {self.tick_interval}")
            )
        if self.allowed_lateness is not None:
            low, high = _RANGES["allowed_lateness"]
            if not low <= self.allowed_lateness <= high:
                out.append(
                    (
                        "allowed_lateness",
                        f"allowed_lateness must be from {format_duration(low)} to "
                        f"{format_duration(high)}, got {format_duration(self.allowed_lateness)}",
                    )
                )
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            out.append(
                ("metrics_port", f"metrics_port must be a port number, got {self.metrics_port}")
            )
        return out

    # -- client settings

    def kafka_python_kwargs(self) -> dict[str, Any]:
        """Connection settings for kafka-python clients (producer, consumer, admin)."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.ssl_cafile:
            kw["ssl_cafile"] = self.ssl_cafile
        if self.ssl_certfile:
            kw["ssl_certfile"] = self.ssl_certfile
        if self.ssl_keyfile:
            kw["ssl_keyfile"] = self.ssl_keyfile
        if self.security_protocol.startswith("SASL"):
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password
        return kw

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection settings for aiokafka clients (the worker's own readers)."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kw["ssl_context"] = self.ssl_context()
        if self.security_protocol.startswith("SASL"):
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password
        return kw

    def ssl_context(self) -> Any:
        """An ``ssl.SSLContext`` from the TLS files (system CAs when no CA file is set)."""
        import ssl

        ctx = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return ctx


# setting name (file key) -> (environment variable, kind)
_SETTINGS: dict[str, tuple[str, str]] = {
    "kafka_bootstrap": ("CAREWATCH_KAFKA_BOOTSTRAP", "str"),
    "kafka_security_protocol": ("CAREWATCH_KAFKA_SECURITY_PROTOCOL", "str"),
    "kafka_ssl_cafile": ("CAREWATCH_KAFKA_SSL_CAFILE", "str"),
    "kafka_ssl_certfile": ("CAREWATCH_KAFKA_SSL_CERTFILE", "str"),
    "kafka_ssl_keyfile": ("CAREWATCH_KAFKA_SSL_KEYFILE", "str"),
    "kafka_sasl_mechanism": ("CAREWATCH_KAFKA_SASL_MECHANISM", "str"),
    "kafka_sasl_username": ("CAREWATCH_KAFKA_SASL_USERNAME", "str"),
    "kafka_sasl_password": ("CAREWATCH_KAFKA_SASL_PASSWORD", "str"),
    "topic_events": ("CAREWATCH_TOPIC_EVENTS", "str"),
    "topic_outcomes": ("CAREWATCH_TOPIC_OUTCOMES", "str"),
    "topic_failures": ("CAREWATCH_TOPIC_FAILURES", "str"),
    "topic_rejected": ("CAREWATCH_TOPIC_REJECTED", "str"),
    "topic_sessions": ("CAREWATCH_TOPIC_SESSIONS", "str"),
    "partitions": ("CAREWATCH_PARTITIONS", "int"),
    "replication_factor": ("CAREWATCH_REPLICATION_FACTOR", "int"),
    "group_id": ("CAREWATCH_GROUP_ID", "str"),
    "rules": ("CAREWATCH_RULES", "str"),
    "allowed_lateness": ("CAREWATCH_ALLOWED_LATENESS", "duration"),
    "tick_interval": ("CAREWATCH_TICK_INTERVAL", "duration"),
    "journal_horizon": ("CAREWATCH_JOURNAL_HORIZON", "duration"),
    "metrics_port": ("CAREWATCH_METRICS_PORT", "int"),
    "metrics_host": ("CAREWATCH_METRICS_HOST", "str"),
    "data_dir": ("CAREWATCH_DATA_DIR", "str"),
}

#: Every setting's environment variable, by setting name.
ENV_NAMES: dict[str, str] = {name: env for name, (env, _) in _SETTINGS.items()}


#: Ranges of the numeric settings: whole numbers, and durations (seconds).
_RANGES: dict[str, tuple[float, float]] = {
    "partitions": (1, 10_000),
    "replication_factor": (1, 100),
    "metrics_port": (0, 65535),
    "allowed_lateness": (
        ENGINE_DEFAULTS["allowed_lateness"].low,
        ENGINE_DEFAULTS["allowed_lateness"].high,
    ),
    "tick_interval": (0.001, 3600.0),
    "journal_horizon": (0.0, 3650 * 86400.0),
}


def _convert(name: str, kind: str, value: str) -> Any:
    """An environment variable's text as the setting's kind (``ConfigError`` naming it)."""
    if kind == "str":
        return value
    low, high = _RANGES[name]
    if kind == "int":
        digits = value.strip().removeprefix("-")
        if not digits.isdigit() or not digits.isascii():
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        n = int(value)
        if not low <= n <= high:
            raise ConfigError(f"{name} must be from {low:.0f} to {high:.0f}, got {n}")
        return n
    try:
        seconds = parse_duration(value)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if not low <= seconds <= high:
        raise ConfigError(
            f"{name} of {value} is out of range; it must be from "
            f"{format_duration(low)} to {format_duration(high)}"
        )
    return seconds


def _read_file(path: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The settings of a YAML file, each value read as written (``group_id: on`` is the
    text ``on``), every problem named with its line at once; and each setting's line."""
    data = read_file(path, "config file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulesError(f"not UTF-8 text: {exc.reason}", source=path) from None
    r = Reader(path)
    out: dict[str, Any] = {}
    lines: dict[str, int] = {}
    with r.attempt():
        entries = r.mapping(read_yaml(text, path), "the config file")
        for name, node in entries.items():
            if name not in _SETTINGS:
                r.problem(
                    node,
                    f"unknown setting {name!r}{did_you_mean(name, _SETTINGS)}; "
                    f"settings are {', '.join(_SETTINGS)}",
                )
                continue
            kind = _SETTINGS[name][1]
            lines[name] = node.line
            with r.attempt():
                if node.value is None:
                    out[name] = None
                elif kind == "str":
                    out[name] = r.text(node, name)
                elif kind == "int":
                    low, high = _RANGES[name]
                    out[name] = r.integer(node, name, int(low), int(high))
                else:
                    out[name] = r.duration(node, name, *_RANGES[name])
    r.finish()
    return out, lines


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> KafkaConfig:
    """Build the validated config from ``path`` (YAML, optional), the environment
    (``os.environ`` unless ``env`` is given) and keyword ``overrides`` (setting names as
    in the file, e.g. ``kafka_bootstrap``; ``None`` values are ignored), in that order
    of increasing precedence. Every unusable setting is named at once, each with where
    its value came from: ``FILE:LINE``, ``$VARIABLE`` or the command line."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        values, lines = _read_file(path)
        origin = {name: f"{path}:{line}" for name, line in lines.items()}
    environ = os.environ if env is None else env
    for name, (var, kind) in _SETTINGS.items():
        if var in environ and environ[var] != "":
            try:
                values[name] = _convert(name, kind, environ[var])
            except ConfigError as exc:
                raise ConfigError(f"${var}: {exc}") from None
            origin[name] = f"${var}"
    for name, value in overrides.items():
        if name not in _SETTINGS:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = value
            origin[name] = "the command line"
    topics = Topics()
    kw: dict[str, Any] = {}
    for name, value in values.items():
        if name.startswith("topic_"):
            topics = replace(topics, **{name.removeprefix("topic_"): value})
        else:
            kw[name.removeprefix("kafka_")] = value
    config = KafkaConfig(topics=topics, **kw)
    found = config.problems()
    if found:
        raise ConfigError(
            "\n".join(
                f"{origin[name]}: {message}" if name in origin else message
                for name, message in found
            )
        )
    return config
