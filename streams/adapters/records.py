"""What the adapters produce: canonical ``Event``s, and ``Rejected`` records for the rest.

Errors travel as data: a message that cannot become an event is a ``Rejected`` with
where it came from and why, never an exception out of the reading loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detectors.events import Event

__all__ = [
    "INVALID",
    "NO_EVENT",
    "UNSUPPORTED",
    "EventIds",
    "Record",
    "Rejected",
    "excerpt",
]

#: The input is broken (unparseable, a required value missing or malformed).
INVALID = "invalid"
#: The input is fine but of a kind the adapters do not translate (ACK, Observation...).
UNSUPPORTED = "unsupported"
#: Understood, and carries no care event under the site mapping (a proposed
#: appointment, an S14 that only changed the room). Counted, usually not alarming.
NO_EVENT = "no-event"

_EXCERPT_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input record that did not become an event.

    ``origin`` names the input (a file path, a topic); ``location`` the record in it
    ("message 3", "line 12", "row 7", "line 2 entry 5"); ``reason`` says what is wrong
    in words a user can act on; ``excerpt`` is the start of the raw record (at most
    1,000 characters); ``kind`` is ``invalid``, ``unsupported`` or ``no-event``.
    """

    origin: str
    location: str
    reason: str
    excerpt: str = ""
    kind: str = INVALID

    def to_dict(self) -> dict[str, Any]:
        """The dead-letter form (JSON-ready dict) of this record."""
        return {
            "origin": self.origin,
            "location": self.location,
            "reason": self.reason,
            "kind": self.kind,
            "excerpt": self.excerpt,
        }


#: One output of an adapter.
Record = Event | Rejected


def excerpt(raw: bytes | str | None) -> str:
    """The first 1,000 characters of a raw record, as text (undecodable bytes replaced)."""
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        raw = raw[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return raw[:_EXCERPT_CHARS]


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
