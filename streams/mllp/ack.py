"""HL7 v2 acknowledgements (original mode) built from the MSH of the message received.

An ACK echoes what the sender needs to match it to its message and to accept it:

- MSH-1/MSH-2: the received separators and encoding characters, so the sender's
  parser reads our ACK the way it wrote its message;
- MSH-3..6: sending and receiving application/facility swapped;
- MSH-7: when the ACK was built; MSH-9 ``ACK^<trigger>^ACK``; MSH-10 a new control id;
  MSH-11 (processing id) and MSH-12 (version) echoed;
- MSA-1 ``AA`` / ``AE`` / ``AR``, MSA-2 the received MSH-10, MSA-3 a short text;
- for AE/AR (and AA with parts rejected) an ERR segment: ERR-3 an HL7 table 0357
  code, ERR-4 the severity (E error, W warning), ERR-5 the dead-letter kind, ERR-8 the
  reason in full.

``read_header`` never raises: a payload that does not begin with a usable MSH segment
gives ``None`` (not HL7 at all), and the ACK is then built with default separators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "ACCEPT",
    "ERROR",
    "REJECT",
    "AckError",
    "MessageHeader",
    "build_ack",
    "escape",
    "read_header",
]

#: MSA-1 codes (HL7 table 0008, original mode).
ACCEPT, ERROR, REJECT = "AA", "AE", "AR"
_DEFAULT_ENCODING = "^~\\&"
_DEFAULT_VERSION = "2.5"
#: MSA-3 is an ST of at most 80 characters up to v2.6; the full reason goes in ERR-8.
_MSA_TEXT_CHARS = 80
_ERR_TEXT_CHARS = 250
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The MSH fields an ACK needs, as received (still HL7-escaped; MSH-2 exactly as
    declared, even with fewer than four characters), plus the text encoding the
    message was read in (``utf-8``, or ``latin-1`` when it was not UTF-8)."""

    field_separator: str
    encoding_characters: str
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""
    control_id: str = ""
    processing_id: str = ""
    version: str = ""
    charset: str = "utf-8"

    @property
    def component_separator(self) -> str:
        """The component separator (MSH-2, first character)."""
        return self.encoding_characters[0]

    @property
    def trigger(self) -> str:
        """The trigger event (MSH-9.2), e.g. ``S12``; empty if the message has none."""
        parts = self.message_type.split(self.component_separator)
        return parts[1] if len(parts) > 1 else ""


@dataclass(frozen=True, slots=True)
class AckError:
    """What goes in the ERR segment: ``code`` and ``text`` from HL7 table 0357,
    ``severity`` ``E`` (error) or ``W`` (warning), ``kind`` the dead-letter kind and
    ``reason`` the sentence for people."""

    code: str
    text: str
    severity: str
    kind: str
    reason: str


def read_header(data: bytes | str, *, complete: bool = True) -> MessageHeader | None:
    """The MSH header of a message (bytes or text), or ``None`` if ``data`` does not
    start with a usable MSH segment (after a BOM or blank lines).

    With ``complete=False`` (only the head of a message was kept) a header whose
    segment is cut short keeps only the fields known to be whole.
    """
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    first, whole = _first_segment(raw)
    if not complete and not whole:
        # Only a head was kept and it ends inside MSH: keep the fields known to be whole.
        first = first[: first.rfind(first[3:4])] if len(first) > 3 else b""
    charset = "utf-8"
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        text, charset = first.decode("latin-1"), "latin-1"
    if len(text) < 8 or not text.startswith("MSH"):
        return None
    fs = text[3]
    if fs.isalnum() or fs.isspace():
        return None
    fields = text.split(fs)
    encoding = fields[1]
    if not 1 <= len(encoding) <= 5 or len(set(encoding + fs)) != len(encoding) + 1:
        return None
    if any(ch.isalnum() or ch.isspace() for ch in encoding):
        return None

    def msh(n: int) -> str:
        # fields[0] is "MSH" and fields[1] is MSH-2, so MSH-n is fields[n - 1].
        return fields[n - 1].strip() if n - 1 < len(fields) else ""

    return MessageHeader(
        field_separator=fs,
        encoding_characters=encoding,
        sending_application=msh(3),
        sending_facility=msh(4),
        receiving_application=msh(5),
        receiving_facility=msh(6),
        message_type=msh(9),
        control_id=msh(10),
        processing_id=msh(11),
        version=msh(12),
        charset=charset,
    )


def _first_segment(data: bytes) -> tuple[bytes, bool]:
    """The first segment (after a BOM, MLLP start byte or blank lines), and whether its
    end was seen."""
    blank = b"\x0b\r\n \t"
    data = data.lstrip(blank).removeprefix(b"\xef\xbb\xbf").lstrip(blank)
    ends = [i for i in (data.find(b"\r"), data.find(b"\n")) if i != -1]
    if not ends:
        return data, False
    return data[: min(ends)], True


def escape(text: str, header: MessageHeader | None = None, limit: int | None = None) -> str:
    """``text`` made safe as one HL7 field value: the separators and the escape
    character become escape sequences (``\\F\\``, ``\\S\\``...), control characters
    (segment ends, MLLP bytes) become spaces. With ``limit``, the result is cut to at
    most that many characters, never inside an escape sequence."""
    fs, enc = (header.field_separator, header.encoding_characters) if header else ("|", "")
    # A sender may declare fewer than four encoding characters; the rest take their
    # standard values (escaping one more character than needed is harmless).
    enc = enc + _DEFAULT_ENCODING[len(enc) :]
    component, repetition, esc, subcomponent = enc[0], enc[1], enc[2], enc[3]
    text = _CONTROL.sub(" ", text)
    out = []
    codes = {fs: "F", component: "S", repetition: "R", subcomponent: "T", esc: "E"}
    if len(enc) > 4:
        codes[enc[4]] = "P"  # v2.7 truncation character
    length = 0
    for ch in text:
        code = codes.get(ch)
        piece = f"{esc}{code}{esc}" if code else ch
        length += len(piece)
        if limit is not None and length > limit:
            break
        out.append(piece)
    return "".join(out)


def build_ack(
    header: MessageHeader | None,
    code: str,
    text: str = "",
    *,
    error: AckError | None = None,
    now: float,
    control_id: str,
) -> str:
    """The ACK (segments separated by CR, no MLLP framing) answering the message
    whose header is ``header`` (``None``: the message was not HL7, defaults are used).

    ``code`` is ``AA``, ``AE`` or ``AR``; ``text`` goes in MSA-3 (cut to 80
    characters); ``error`` adds an ERR segment. ``now`` is the ACK's time in epoch
    seconds, written in UTC; ``control_id`` is the ACK's own MSH-10.
    """
    if code not in (ACCEPT, ERROR, REJECT):
        raise ValueError(f"unknown acknowledgement code {code!r}")
    h = header or MessageHeader("|", _DEFAULT_ENCODING)
    fs, cs = h.field_separator, h.component_separator
    message_type = f"ACK{cs}{h.trigger}{cs}ACK" if h.trigger else "ACK"
    msh = [
        "MSH",
        h.encoding_characters,
        h.receiving_application,
        h.receiving_facility,
        h.sending_application,
        h.sending_facility,
        datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S+0000"),
        "",
        message_type,
        escape(control_id, h),
        h.processing_id or "P",
        h.version or _DEFAULT_VERSION,
    ]
    msa = ["MSA", code, h.control_id, escape(text, h, _MSA_TEXT_CHARS)]
    segments = [fs.join(msh), fs.join(msa).rstrip(fs)]
    if error is not None:
        err = [
            "ERR",
            "",
            "",
            f"{error.code}{cs}{escape(error.text, h)}{cs}HL70357",
            error.severity,
            escape(error.kind, h),
            "",
            "",
            escape(error.reason, h, _ERR_TEXT_CHARS),
        ]
        segments.append(fs.join(err))
    return "\r".join(segments) + "\r"
