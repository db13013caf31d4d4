"""What the adapters produce: canonical ``Event``s, and ``Rejected`` records for the rest.

Errors travel as data: a message that cannot become an event is a ``Rejected`` with
where it came from and why, never an exception out of the reading loop.
"""

from __future__ import annotations

from detectors.events import Event
from streams.deadletter import INVALID, NO_EVENT, UNSUPPORTED, Rejected, excerpt

__all__ = [
    "INVALID",
    "NO_EVENT",
    "UNSUPPORTED",
    "EventIds",
    "Record",
    "Rejected",
    "excerpt",
]

#: One output of an adapter.
Record = Event | Rejected


class EventIds:
    """Deterministic event ids for one input record: ``<base>:<type>:<n>``.

    ``n`` counts events of that type within the record from 1, so an ORU with two
    reports gives ``...:result.reported:1`` and ``...:result.reported:2``, and the same
    record read again gives the same ids (delivery is at least once; ids deduplicate).
    """

    __slots__ = ("_counts", "base")

    def __init__(self, base: str) -> None:
        self.base = base
        self._counts: dict[str, int] = {}

    def next(self, event_type: str) -> str:
        """The id of the next event of ``event_type`` from this record."""
        n = self._counts.get(event_type, 0) + 1
        self._counts[event_type] = n
        return f"{self.base}:{event_type}:{n}"
