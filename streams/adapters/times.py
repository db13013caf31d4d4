"""Timestamps as hospitals write them, turned into epoch seconds (UTC).

A timestamp with a UTC offset means exactly what it says. One without an offset is read
as wall-clock time in the site's timezone (``SiteClock.zone``, from the site mapping):
at a daylight-saving fold (the repeated autumn hour) the first, summer-time reading is
taken; a time in the spring gap is read with the offset in force before the change.
A date without a time of day is midnight at the start of that day in the site's
timezone, or refused, as the mapping's ``date_only`` says.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from detectors.errors import InputError

__all__ = ["SiteClock", "format_time"]

# YYYYMMDD[HH[MM[SS[.S{1,4}]]]][+/-ZZZZ]. python-hl7's own parse_datetime is not used:
# it accepts trailing garbage and reads "-0030" as +00:30.
_HL7_TS = re.compile(
    r"(\d{4})(\d{2})(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?)?([+-]\d{4})?"
)


def format_time(seconds: float) -> str:
    """Epoch seconds as ISO-8601 in UTC with ``+00:00`` (the wire form of the contract)."""
    dt = datetime.fromtimestamp(seconds, UTC)
    return dt.isoformat() if dt.microsecond else dt.isoformat(timespec="seconds")


@dataclass(frozen=True)
class SiteClock:
    """Reads timestamps for one site: ``zone`` for times without an offset, and the
    ``date_only`` policy (``"midnight"`` or ``"reject"``)."""

    zone: tzinfo
    date_only: str = "midnight"

    @classmethod
    def named(cls, zone_name: str, date_only: str = "midnight") -> SiteClock:
        """A clock for an IANA zone name such as ``Europe/London``."""
        return cls(ZoneInfo(zone_name), date_only)

    def hl7(self, text: str, what: str = "timestamp") -> float:
        """An HL7 v2 DTM/TS value (``YYYYMMDD[HH[MM[SS[.SSSS]]]][+/-ZZZZ]``) as epoch
        seconds (UTC); without an offset it is wall-clock time in ``zone``.

        Raises ``InputError`` naming ``what`` for anything else, and for a date without
        a time when ``date_only`` is ``"reject"``.
        """
        match = _HL7_TS.fullmatch(text.strip())
        if match is None:
            raise InputError(f"{what} {text!r} is not an HL7 timestamp (YYYYMMDDHHMM[SS][+/-ZZZZ])")
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        if hour is None:
            self._check_date_only(text, what)
        try:
            zone: tzinfo = self.zone
            if offset is not None:
                zone = _fixed_offset(offset)
            dt = datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                int((fraction or "0").ljust(6, "0")),
                tzinfo=zone,
            )
            return dt.timestamp()
        except (ValueError, OverflowError) as exc:
            raise InputError(f"{what} {text!r} is not a valid time: {exc}") from None

    def iso(self, text: str, what: str = "timestamp") -> float:
        """An ISO-8601 / FHIR dateTime or instant as epoch seconds (UTC); without an
        offset it is wall-clock time in ``zone``. A year or year-month alone is refused
        (too coarse to time a care event).

        Raises ``InputError`` naming ``what`` when the value cannot be read.
        """
        text = text.strip()
        if len(text) < 8:
            raise InputError(f"{what} {text!r} is not a date and time precise enough to use")
        if "T" not in text and " " not in text:
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise InputError(f"{what} {text!r} is not an ISO-8601 date") from None
            self._check_date_only(text, what)
            return self.local(datetime(day.year, day.month, day.day))
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise InputError(f"{what} {text!r} is not an ISO-8601 timestamp") from None
        return self.local(dt)

    def local(self, dt: datetime) -> float:
        """A ``datetime`` as epoch seconds; a naive one is wall-clock time in ``zone``."""
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self.zone)
        try:
            seconds = dt.timestamp()
        except (ValueError, OverflowError) as exc:
            raise InputError(f"time {dt!r} is out of range: {exc}") from None
        if not math.isfinite(seconds):
            raise InputError(f"time {dt!r} is not a finite instant")
        return seconds

    def _check_date_only(self, text: str, what: str) -> None:
        if self.date_only == "reject":
            raise InputError(
                f"{what} {text!r} is a date without a time of day, and the site mapping "
                "says date_only: reject"
            )


def _fixed_offset(offset: str) -> timezone:
    hours, minutes = int(offset[1:3]), int(offset[3:5])
    if hours > 23 or minutes > 59:
        raise ValueError(f"UTC offset {offset} is out of range")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if offset[0] == "-" else delta)
