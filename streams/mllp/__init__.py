"""HL7 v2 over MLLP: the listener behind ``carewatch listen mllp`` (``docs/mllp.md``).

One small module per idea:

- ``framing``: the pure, incremental MLLP frame decoder (bytes in, messages out);
- ``ack``: HL7 v2 ACKs built from the received MSH;
- ``decide``: which ACK (AA/AE/AR) a message earns from what the adapters made of it;
- ``handoff`` / ``kafka_handoff``: where accepted events go, durably, before the AA;
- ``appender``: durable (fsync-ed, group-committed) appends to a file;
- ``dead_letter``: the rejected messages, with reason and raw bytes;
- ``metrics``: Prometheus metrics on an injected registry;
- ``server``: the asyncio TCP server that ties them together.

Embedding the listener::

    listener = MllpListener(ListenerSettings(port=2575), FileHandoff("events.jsonl"),
                            DeadLetterFile("rejected.jsonl"))
    await listener.start()
    ...
    await listener.stop()
"""

from __future__ import annotations

from streams.mllp.ack import AckError, MessageHeader, build_ack, read_header
from streams.mllp.dead_letter import DeadLetterFile, dead_letter_record
from streams.mllp.decide import Decision, decide, refuse
from streams.mllp.framing import Frame, FrameDecoder, Junk, Oversized, Truncated, frame
from streams.mllp.handoff import FileHandoff, Handoff, HandoffError, MemoryHandoff
from streams.mllp.kafka_handoff import KafkaHandoff
from streams.mllp.metrics import MllpMetrics
from streams.mllp.server import ListenerSettings, MllpListener

__all__ = [
    "AckError",
    "DeadLetterFile",
    "Decision",
    "FileHandoff",
    "Frame",
    "FrameDecoder",
    "Handoff",
    "HandoffError",
    "Junk",
    "KafkaHandoff",
    "ListenerSettings",
    "MemoryHandoff",
    "MessageHeader",
    "MllpListener",
    "MllpMetrics",
    "Oversized",
    "Truncated",
    "build_ack",
    "dead_letter_record",
    "decide",
    "frame",
    "read_header",
    "refuse",
]
