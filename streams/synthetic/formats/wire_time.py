"""Event times as the hospital's systems write them on the wire.

The generator keeps every time as integer epoch seconds, UTC. Its HL7 v2 and FHIR output
shows the wall-clock time of the hospital (``Europe/London``) *with* its UTC offset
(``+0000`` in winter, ``+0100`` in summer), as UK systems do, so every value is
unambiguous, also in the repeated hour of the autumn change.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = ["HOSPITAL_ZONE", "epoch_of", "fhir_time", "hl7_time"]

#: The timezone of the hospital's clocks.
HOSPITAL_ZONE = ZoneInfo("Europe/London")


def hl7_time(t: int) -> str:
    """HL7 v2 DTM ``YYYYMMDDHHMMSS+ZZZZ`` of epoch seconds ``t`` (UTC), in hospital time."""
    return datetime.fromtimestamp(t, HOSPITAL_ZONE).strftime("%Y%m%d%H%M%S%z")


def fhir_time(t: int) -> str:
    """FHIR ``instant``/``dateTime`` (``2026-03-02T09:30:00+00:00``) of epoch seconds ``t``
    (UTC), in hospital time with its offset."""
    return datetime.fromtimestamp(t, HOSPITAL_ZONE).isoformat(timespec="seconds")


def epoch_of(text: str) -> int:
    """Epoch seconds (UTC) of a canonical ISO-8601 time with offset (``...+00:00``)."""
    return int(datetime.fromisoformat(text).timestamp())
