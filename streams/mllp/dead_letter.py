"""The listener's dead letter: every message (or part) not accepted, with its reason and
the raw bytes, one JSON object per line, fsync-ed before the ACK that answers it.

A line is ``Rejected.to_dict()`` (``origin``, ``location``, ``kind``, ``reason``,
``excerpt``) plus:

- ``peer``: the client's address; ``received_at``: when the message was read (ISO-8601,
  UTC); ``ack``: the code it was answered with (absent if it could not be answered);
- ``size``: the message's length in bytes; ``raw_base64``: its bytes, base64-encoded
  (lossless whatever the encoding), and ``raw_truncated: true`` when only the first
  4 KiB were kept (a message over the size limit, or one cut off).
"""

from __future__ import annotations

import base64
import os
from typing import Any

import orjson

from detectors.events import format_time
from streams.deadletter import Rejected
from streams.mllp.appender import DurableAppender

__all__ = ["DeadLetterFile", "dead_letter_record"]


def dead_letter_record(
    rejected: Rejected,
    raw: bytes | None,
    *,
    peer: str,
    received_at: float,
    ack: str | None,
    size: int | None = None,
) -> dict[str, Any]:
    """The dead-letter line for ``rejected``; ``received_at`` is epoch seconds (UTC);
    ``size`` is the whole message's length when ``raw`` is only its head."""
    record = rejected.to_dict()
    record["peer"] = peer
    record["received_at"] = format_time(received_at)
    if ack is not None:
        record["ack"] = ack
    if raw is not None:
        record["size"] = len(raw) if size is None else size
        record["raw_base64"] = base64.b64encode(raw).decode("ascii")
        if size is not None and size > len(raw):
            record["raw_truncated"] = True
    return record


class DeadLetterFile:
    """Appends dead-letter records to ``path``; ``write`` returns once they are durable
    (raises ``AppendError`` otherwise)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._appender = DurableAppender(path)
        self.path = self._appender.path

    async def write(self, records: list[dict[str, Any]]) -> None:
        """Append ``records`` (from ``dead_letter_record``) and fsync."""
        await self._appender.append(b"".join(orjson.dumps(r) + b"\n" for r in records))

    async def close(self) -> None:
        """Wait for pending writes and close the file."""
        await self._appender.close()
