"""Where the listener hands accepted events on, before it answers AA.

A handoff is the listener's promise keeper: ``deliver`` returns only once the events
are durable (on disk, or acknowledged by every in-sync Kafka replica). Until then the
sender has no ACK and keeps the message; if ``deliver`` fails the listener answers AE
(and keeps the message whole in the dead letter) and the sender sends it again. Delivery is therefore at least once:
a crash between ``deliver`` and the ACK repeats events, which carry deterministic ids
(``<MSH-10>:<type>:<n>``) so consumers drop the repeats.

- ``FileHandoff``: appends canonical JSON Lines to a file, flushed and fsync-ed
  (``carewatch run FILE`` reads it, like any event file);
- ``KafkaHandoff`` (``streams.mllp.kafka_handoff``): produces to a Kafka topic with
  ``acks=all`` and idempotence.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

import orjson

from detectors.errors import RuntimeFault
from detectors.events import Event
from streams.mllp.appender import AppendError, DurableAppender

__all__ = ["FileHandoff", "Handoff", "HandoffError", "MemoryHandoff", "event_lines"]


class HandoffError(RuntimeFault):
    """Events could not be made durable; the message must not be acknowledged."""


class Handoff(Protocol):
    """Where accepted events go. Implementations must be safe to call from several
    connections at once (one event loop) and must not return from ``deliver`` before
    the events would survive a crash."""

    #: Says where the events go, for logs (no credentials).
    description: str

    async def deliver(self, events: Sequence[Event]) -> None:
        """Make ``events`` durable; raise ``HandoffError`` if they could not be."""
        ...

    async def close(self) -> None:
        """Finish pending deliveries and release the resources."""
        ...


def event_lines(events: Sequence[Event]) -> bytes:
    """The events as canonical JSON Lines."""
    dumps = orjson.dumps
    return b"".join(dumps(e.to_dict()) + b"\n" for e in events)


class FileHandoff:
    """Appends events as canonical JSON Lines to ``path``, fsync-ed before ``deliver``
    returns. Lines from concurrent connections never interleave; each message's events
    are written together."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            self._appender = DurableAppender(path)
        except AppendError as exc:
            raise HandoffError(str(exc)) from None
        self.description = f"file {os.fspath(path)}"

    async def deliver(self, events: Sequence[Event]) -> None:
        """Append ``events`` and fsync; raises ``HandoffError`` on any write failure."""
        try:
            await self._appender.append(event_lines(events))
        except AppendError as exc:
            raise HandoffError(str(exc)) from None

    async def close(self) -> None:
        """Wait for pending writes and close the file."""
        await self._appender.close()


class MemoryHandoff:
    """Keeps delivered events in a list (tests, embedding). ``fail`` makes the next
    deliveries raise ``HandoffError``, to test what the listener does then."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.fail = False
        self.closed = False
        self.description = "memory"

    async def deliver(self, events: Sequence[Event]) -> None:
        """Keep ``events``, or raise ``HandoffError`` while ``fail`` is set."""
        if self.fail:
            raise HandoffError("memory handoff told to fail")
        self.events.extend(events)

    async def close(self) -> None:
        """Mark the handoff closed."""
        self.closed = True
