"""Rejected input as data: every record that cannot become an event ends up here, with
where it came from and why, and is counted. Nothing is silently dropped.

One type serves every reader (JSON Lines, HL7 v2, FHIR, CSV/Parquet, MLLP, Kafka).
``kind`` is one of a small fixed set, so it is safe as a metrics label; ``reason`` is the
sentence for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BEYOND_HORIZON",
    "ID_CONFLICT",
    "INVALID",
    "KINDS",
    "NO_EVENT",
    "TOO_LARGE",
    "UNDELIVERED",
    "UNSUPPORTED",
    "Rejected",
    "excerpt",
]

#: The input is broken (not JSON, not HL7, a required value missing or malformed).
INVALID = "invalid"
#: The input is fine but of a kind Carewatch does not translate (an ACK, an Observation).
UNSUPPORTED = "unsupported"
#: Understood, and carries no care event under the site mapping (a proposed appointment,
#: an S14 that only changed the room). Counted, usually not alarming.
NO_EVENT = "no-event"
#: Larger than the configured maximum (MLLP listener).
TOO_LARGE = "too-large"
#: Fine, but its events could not be handed on (MLLP listener: Kafka unavailable, the
#: events file not writable); the sender was asked to send it again.
UNDELIVERED = "undelivered"
#: Further behind the watermark than the correction horizon: using it could no longer give
#: the answer its in-order delivery would have (the engine refuses it).
BEYOND_HORIZON = "beyond-horizon"
#: An event id already used by a different event (a re-delivery is the same event).
ID_CONFLICT = "id-conflict"
#: Every kind, in the order reports list them.
KINDS: tuple[str, ...] = (
    INVALID,
    UNSUPPORTED,
    NO_EVENT,
    TOO_LARGE,
    UNDELIVERED,
    BEYOND_HORIZON,
    ID_CONFLICT,
)

_EXCERPT_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input record that did not become an event.

    ``origin`` names the input (a file path, ``-`` for stdin, a topic, a peer address);
    ``location`` the record in it (``line 12``, ``message 3``, ``row 7``); ``reason``
    says what is wrong in words a user can act on; ``excerpt`` is the start of the raw
    record (at most 1,000 characters); ``kind`` is one of ``KINDS``.
    """

    origin: str
    location: str
    reason: str
    excerpt: str = ""
    kind: str = INVALID

    def to_dict(self) -> dict[str, Any]:
        """The dead-letter record (JSON-ready)."""
        return {
            "origin": self.origin,
            "location": self.location,
            "kind": self.kind,
            "reason": self.reason,
            "excerpt": self.excerpt,
        }


def excerpt(raw: bytes | str | None) -> str:
    """The first 1,000 characters of a raw record, as text (undecodable bytes replaced)."""
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        raw = raw[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return raw[:_EXCERPT_CHARS]
