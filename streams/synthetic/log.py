"""The event log a synthetic run writes into, and the identifiers it hands out.

Event ids are ``E`` and nine digits in the order the generator decides the events, so
sorting by ``(time, id)`` is deterministic and ties fall in decision order.
"""

from __future__ import annotations

from typing import Any

from detectors.events import format_time

__all__ = ["EventLog", "Record"]

#: ``(time in epoch seconds UTC, event id, canonical event dict)``.
Record = tuple[int, str, dict[str, Any]]


class EventLog:
    """Collects canonical events as the generator decides them."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._counters: dict[str, int] = {}

    def new_id(self, prefix: str, width: int = 8) -> str:
        """A fresh identifier ``prefix`` + zero-padded counter, e.g. ``A00000042``."""
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        return f"{prefix}{n:0{width}d}"

    def emit(
        self,
        t: int,
        type_: str,
        patient: str | None,
        refs: dict[str, str],
        attrs: dict[str, Any],
    ) -> str:
        """Record one event at ``t`` (epoch seconds, UTC) and return its new id."""
        eid = self.new_id("E", 9)
        event: dict[str, Any] = {"id": eid, "type": type_, "time": format_time(t)}
        if patient is not None:
            event["patient"] = patient
        event["refs"] = refs
        event["attrs"] = attrs
        self.records.append((t, eid, event))
        return eid

    def sorted_records(self) -> list[Record]:
        """The records in event-time order, ties by event id."""
        return sorted(self.records, key=lambda r: (r[0], r[1]))
