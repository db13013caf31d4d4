"""Building HL7 v2 segments and messages: separators, escaping, MSH and PID.

Messages use the standard encoding characters ``^~\\&``, CR (``\\r``) after every segment
including the last, HL7 v2.5.1, processing id ``P``. Times are ``YYYYMMDDHHMMSS+ZZZZ``
in hospital time (see ``wire_time``).
"""

from __future__ import annotations

from functools import lru_cache

from streams.synthetic.formats.vocabulary import patient_details

__all__ = ["MLLP_END", "MLLP_START", "escape", "message", "msh", "pid", "segment"]

#: MLLP framing: a start block byte before each message, end block and CR after it.
MLLP_START = b"\x0b"
MLLP_END = b"\x1c\r"

_SPECIAL = str.maketrans({"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"})
#: Assigning authority of the hospital number in PID-3 (CX-4).
_AUTHORITY = "HOSP"


def escape(value: str) -> str:
    """``value`` with HL7 delimiters escaped (``U&E`` -> ``U\\T\\E``)."""
    if any(c in value for c in "\\|^&~"):
        return value.translate(_SPECIAL)
    return value


def segment(name: str, fields: dict[int, str]) -> str:
    """One segment from its fields by number (1-based); missing fields are empty and
    trailing empty fields are left out. Values are written as given (escape text first)."""
    last = max((n for n, v in fields.items() if v), default=0)
    return "|".join([name, *(fields.get(n, "") for n in range(1, last + 1))])


def msh(
    app: str,
    facility: str,
    time: str,
    message_type: str,
    control_id: str,
    receiver: str = "CAREWATCH",
) -> str:
    """The MSH segment: sending ``app`` at ``facility`` to ``receiver``, at ``time`` (an
    HL7 timestamp), ``message_type`` like ``SIU^S12^SIU_S12``, unique ``control_id``."""
    return (
        f"MSH|^~\\&|{app}|{facility}|{receiver}|TRUST|{time}||{message_type}|{control_id}|P|2.5.1"
    )


def pid(patient: str, *, died_at: str = "") -> str:
    """The PID segment of ``patient`` (hospital number in PID-3); with ``died_at`` (an HL7
    timestamp) the death date/time (PID-29) and indicator (PID-30 = Y)."""
    if not died_at:
        return _living_pid(patient)
    return _pid(patient, died_at)


@lru_cache(maxsize=65536)
def _living_pid(patient: str) -> str:
    return _pid(patient, "")


def _pid(patient: str, died_at: str) -> str:
    who = patient_details(patient)
    fields = {
        1: "1",
        3: f"{escape(patient)}^^^{_AUTHORITY}^MR",
        5: f"{who.family}^{who.given}^^^^^L",
        7: who.birth_date.strftime("%Y%m%d"),
        8: who.sex,
    }
    if died_at:
        fields[29] = died_at
        fields[30] = "Y"
    return segment("PID", fields)


def message(segments: list[str]) -> str:
    """A whole message: the segments, each ended by CR."""
    return "\r".join(segments) + "\r"
