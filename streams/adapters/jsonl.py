"""Canonical JSON Lines in, ``Event``s (and ``Rejected`` lines) out.

The reader every canonical input goes through, a line at a time: kept on its own so the
compiled build (``setup.py``) can compile it with the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import orjson

from detectors.errors import EventError
from detectors.events import event_from_dict
from streams.adapters.records import INVALID, Record, Rejected, excerpt

__all__ = ["Chunks", "iter_jsonl"]

_BOM = b"\xef\xbb\xbf"


class Chunks(Protocol):
    """An input's bytes in chunks; ``error`` says why reading stopped early, if it did."""

    error: str

    def __iter__(self) -> Iterator[bytes]: ...


def iter_jsonl(chunks: Chunks, origin: str, place: str) -> Iterator[Record]:
    """Canonical events, one JSON object per line, validated by ``event_from_dict``; then,
    if reading failed, a rejection at ``place`` (``file`` or ``stream``)."""
    number = 0
    pending = b""
    loads = orjson.loads
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            number += 1
            # The common case inline (this loop runs for every input line): a line that
            # starts an object and decodes to a valid event. Anything else, or any
            # error, takes the careful path, which also gives the rejection its reason.
            if line[:1] == b"{" and number > 1:
                try:
                    yield event_from_dict(loads(line))
                    continue
                except (orjson.JSONDecodeError, EventError):
                    pass
            record = _jsonl_record(line, number, origin)
            if record is not None:
                yield record
    if pending:
        record = _jsonl_record(pending, number + 1, origin)
        if record is not None:
            yield record
    if chunks.error:
        yield Rejected(origin, place, f"reading stopped: {chunks.error}", "", INVALID)


def _jsonl_record(line: bytes, number: int, origin: str) -> Record | None:
    if number == 1:
        line = line.removeprefix(_BOM)
    if not line.strip():
        return None
    try:
        return event_from_dict(orjson.loads(line))
    except orjson.JSONDecodeError as exc:
        return Rejected(origin, f"line {number}", f"not valid JSON: {exc}", excerpt(line))
    except EventError as exc:
        return Rejected(origin, f"line {number}", str(exc), excerpt(line))
