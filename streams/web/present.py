"""How the pages show things: times in the site's zone, durations, labels."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["Presenter"]

# what detectors.contract.human_time writes into every summary sentence
_UTC_WORDS = re.compile(r"\b(\w{3} \d{2} \w{3} \d{4}) (\d{2}):(\d{2}) UTC\b")

STATUS_WORDS = {
    "missed": "missed",
    "late": "late (happened, after the deadline)",
    "violation": "violation",
    "withdrawn": "withdrawn (was met in time after all)",
}
ACTION_WORDS = {
    "take": "took it",
    "assign": "assigned it",
    "note": "added a note",
    "resolve": "resolved it",
    "reopen": "reopened it",
    "auto-close": "closed it",
}


class Presenter:
    """Formats for the templates, in the site's time zone ``zone``."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def time(self, seconds: float | None) -> str:
        """``Wed 25 Feb 2026 10:15 GMT`` in the site's zone; empty for None."""
        if seconds is None:
            return ""
        return datetime.fromtimestamp(seconds, self.zone).strftime("%a %d %b %Y %H:%M %Z")

    def iso(self, seconds: float | None) -> str:
        """ISO-8601 with the site's offset (for exports and machine-readable attributes)."""
        if seconds is None:
            return ""
        return datetime.fromtimestamp(seconds, self.zone).isoformat(timespec="seconds")

    def stamp(self, text: str | None) -> str:
        """An ISO-8601 time from a record (``2026-03-02T10:00:00+00:00``) in the site's
        zone, as ``time`` writes it; empty for None, the text itself if it is no time."""
        if not text:
            return ""
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return self.time(moment.timestamp())

    def sentence(self, summary: str) -> str:
        """A summary sentence with its UTC times moved into the site's zone."""

        return _UTC_WORDS.sub(lambda m: self._local_words(m[0]), summary)

    @lru_cache(maxsize=4096)  # noqa: B019  # one presenter per app, a few thousand times
    def _local_words(self, utc_words: str) -> str:
        moment = datetime.strptime(utc_words, "%a %d %b %Y %H:%M UTC")
        return self.time(moment.replace(tzinfo=UTC).timestamp())

    @staticmethod
    def duration(seconds: float | None) -> str:
        """``3 d 4 h``, ``5 h 10 min``, ``12 min``; empty for None or negative."""
        if seconds is None or seconds < 0:
            return ""
        minutes = int(seconds // 60)
        days, rest = divmod(minutes, 1440)
        hours, mins = divmod(rest, 60)
        if days:
            return f"{days} d {hours} h"
        if hours:
            return f"{hours} h {mins} min"
        return f"{mins} min"
