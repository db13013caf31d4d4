"""Rejected input as data: every record that cannot become an event ends up here, with
where it came from and why, and is counted. Nothing is silently dropped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Rejected"]

_EXCERPT = 2000  # characters of the original kept in a dead-letter record


@dataclass(frozen=True, slots=True)
class Rejected:
    """One input that was not accepted.

    ``origin`` names the source (a file path, ``-`` for stdin, a topic, a peer address);
    ``location`` the place in it (line number, message index, row, offset). ``code`` is a
    bounded reason code (``detectors.metrics.REJECT_CODES``) safe for metrics labels;
    ``reason`` is the sentence for people. ``raw`` is (an excerpt of) the original.
    """

    origin: str
    location: int | str
    code: str
    reason: str
    raw: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The dead-letter record."""
        return {
            "origin": self.origin,
            "location": self.location,
            "code": self.code,
            "reason": self.reason,
            "raw": self.raw[:_EXCERPT],
        }
