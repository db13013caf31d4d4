"""What goes on the wire: message keys, control messages, record values, partitioning.

Events are the canonical JSON line, keyed by patient (session, then id, for events about
no single patient). Control messages share the events topic (so that they queue behind
the events ahead of them) and are told apart by the ``carewatch-control`` header; they
are never counted as events and never rejected. Output records are JSON keyed by
``failure_id``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from kafka.partitioner.default import murmur2

from detectors.errors import EventError
from detectors.events import Event, event_from_dict
from detectors.records import Outcome
from streams.deadletter import INVALID, Rejected, excerpt

__all__ = [
    "CONTROL_HEADER",
    "Control",
    "Output",
    "control_message",
    "decode_event",
    "event_key",
    "failure_value",
    "outcome_value",
    "parse_control",
    "partition_for",
    "rejected_value",
]

#: Header naming a control message's kind; events never carry it.
CONTROL_HEADER = "carewatch-control"
#: Control kinds: ``tick`` = "the wall clock is now TIME" (live mode; the worker moves
#: the watermark to TIME minus the allowed lateness); ``advance`` = "move the watermark
#: to TIME" (``carewatch kafka advance``); ``watermark`` = a source partition's watermark,
#: sent on the internal sessions topic.
CONTROL_KINDS = frozenset({"tick", "advance", "watermark"})

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Control:
    """A parsed control message. ``time`` is epoch seconds (UTC); ``source`` is the
    partition a ``watermark`` comes from."""

    kind: str
    time: float
    source: int = -1


@dataclass(frozen=True, slots=True)
class Output:
    """One record to publish. ``role`` names the topic (``outcomes``, ``failures``,
    ``rejected``, ``sessions``); ``partition`` is explicit (``None``: by key hash)."""

    role: str
    key: bytes | None
    value: bytes
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2, as the Java
    client and kafka-python do), so explicit choices agree with keyed sends."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def event_key(obj: Any) -> bytes | None:
    """The key of an event dict: its patient, else its session, else its id."""
    if not isinstance(obj, dict):
        return None
    refs = obj.get("refs")
    session = refs.get("session") if isinstance(refs, dict) else None
    for value in (obj.get("patient"), session, obj.get("id")):
        if isinstance(value, str) and value:
            return value.encode()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value).encode()
    return None


def control_message(kind: str, time: float, source: int = -1) -> tuple[bytes, Headers]:
    """Value and headers of a control message."""
    body: dict[str, Any] = {"time": time}
    if source >= 0:
        body["source"] = source
    return orjson.dumps(body), ((CONTROL_HEADER, kind.encode()),)


def control_kind(headers: Any) -> str | None:
    """The control kind in ``headers`` (a list of (name, bytes) pairs), or ``None``."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:
        if name == CONTROL_HEADER:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def parse_control(kind: str, value: bytes | None) -> Control:
    """Parse a control message body; raises ``ValueError`` when it is unusable."""
    if kind not in CONTROL_KINDS:
        raise ValueError(f"unknown control kind {kind!r}")
    try:
        body = orjson.loads(value or b"")
        t = float(body["time"])
        source = int(body.get("source", -1))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"control message {kind!r} without a numeric time") from None
    return Control(kind, t, source)


def decode_event(value: bytes | None, origin: str, location: str) -> Event | Rejected:
    """The event in a message value, or a ``Rejected`` (kind ``invalid``) with the
    reason, worded as the file reader words it."""
    raw = value or b""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(origin, location, f"not valid JSON: {exc}", excerpt(raw), INVALID)
    try:
        return event_from_dict(obj)
    except EventError as exc:
        return Rejected(origin, location, str(exc), excerpt(raw), INVALID)


def rejected_value(rejected: Rejected, original: bytes | None = None) -> bytes:
    """The dead-letter record: the reason, an excerpt, and (for messages) the original
    bytes in base64 so nothing is lost."""
    out = rejected.to_dict()
    if original is not None:
        out["raw_base64"] = base64.b64encode(original).decode()
    return orjson.dumps(out)


def outcome_value(o: Outcome) -> bytes:
    """The outcome record (JSON) as published on the outcomes topic."""
    return orjson.dumps(o.to_outcome_dict())


def failure_value(o: Outcome) -> bytes:
    """The failure record (JSON) as published on the failures topic."""
    return orjson.dumps(o.to_failure_dict())
