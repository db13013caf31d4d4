"""Reading HL7 v2 text: framing, message splitting, segments and field paths.

python-hl7 builds a full object tree for every message, at about 0.4 µs per byte (1 ms
for a typical SIU), ten times the budget of 10,000 messages a second. So we split
segments and fields ourselves with ``str.split`` and only take apart the few fields a
mapping asks for, keeping python-hl7's semantics: the same "follow the first child"
rule of ``extract_field``, its escape-sequence decoding and its accessor keys
(``PID.F3.R2.C1``) as one way to write a field path. A test checks our values against
``hl7.parse`` field by field on the sample messages.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import hl7
import hl7.util

from detectors.errors import InputError

__all__ = [
    "FieldPath",
    "Hl7Message",
    "Segment",
    "decode_message",
    "parse_field_path",
    "split_messages",
]

_BOM = b"\xef\xbb\xbf"
#: Bytes searched twice between chunks: "MSH" plus the longest header we match.
_OVERLAP = 16
#: Bytes of leading non-HL7 data kept for the rejection's excerpt.
_LEAD_KEEP = 4096
_MLLP = b"\x0b\x1c"
#: Segments of the batch/file envelope, dropped wherever they appear.
_ENVELOPE = frozenset({"FHS", "FTS", "BHS", "BTS"})
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
_HYPHEN_PATH = re.compile(r"([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+))?(?:\.(\d+))?\Z")
_ACCESSOR_PATH = re.compile(r"[A-Z][A-Z0-9]{2}\d*(?:\.[FRCS]?\d+){1,4}\Z")


@dataclass(frozen=True, slots=True)
class FieldPath:
    """Where a value sits in a message: segment, field, repetition, component, subcomponent.

    All numbers are 1-based as in the HL7 standard; ``occurrence`` picks the n-th segment
    with that id. ``text`` is the path as the mapping wrote it.
    """

    segment: str
    field: int
    repetition: int = 1
    component: int = 1
    subcomponent: int = 1
    occurrence: int = 1
    text: str = ""


def parse_field_path(text: str) -> FieldPath:
    """Parse ``PID-3``, ``SCH-11.4``, ``PID-3.4.2`` or a python-hl7 accessor key
    (``PID.F3.R2.C1``, ``OBX2.5``).

    Raises ``ValueError`` with what is wrong.
    """
    text = text.strip()
    match = _HYPHEN_PATH.match(text)
    if match:
        seg, fld, comp, sub = match.groups()
        path = FieldPath(seg, int(fld), 1, int(comp or 1), int(sub or 1), 1, text)
    elif _ACCESSOR_PATH.match(text):
        acc = hl7.Accessor.parse_key(text)
        path = FieldPath(
            acc.segment,
            acc.field_num,
            acc.repeat_num or 1,
            acc.component_num or 1,
            acc.subcomponent_num or 1,
            acc.segment_num or 1,
            text,
        )
    else:
        raise ValueError(
            f"{text!r} is not a field path; write e.g. PID-3, SCH-11.4 or PID.F3.R2.C1"
        )
    if min(path.field, path.repetition, path.component, path.subcomponent, path.occurrence) < 1:
        raise ValueError(f"{text!r}: field, component and repetition numbers start at 1")
    return path


def split_messages(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Split a byte stream of HL7 v2 messages into ``(message_number, raw_bytes)``.

    A message starts at ``MSH`` at the start of the data or after a CR, LF, MLLP
    framing byte or BOM, or wherever a whole MSH header (``MSH|^~\\&|``) appears, so
    files with several messages, MLLP-framed captures, BOMs, any segment terminator and
    files concatenated without one all work. Messages are numbered from 1. Data before
    the first ``MSH`` that is not just framing or a batch envelope comes out as number
    0, for the caller to reject.
    """
    number = 0
    started = False
    # The message being collected (before the first MSH: a short tail). A bytearray so
    # that a huge message (a PDF in OBX-5) grows in place instead of being re-copied.
    current = bytearray()
    scanned = 0  # bytes of `current` already searched for message starts
    lead = b""  # the first bytes before the first MSH, for the rejection's excerpt
    lead_is_noise = True
    for chunk in chunks:
        if not chunk:
            continue
        if not started and not current and not lead:
            chunk = bytes(chunk).removeprefix(_BOM)
        current += chunk
        # Search only what is new, with an overlap for an MSH header cut by the chunking.
        starts = _message_starts(current, max(0, scanned - _OVERLAP))
        scanned = len(current)
        if not started:
            if not starts:
                # Keep only a tail (an MSH may be cut in two) so a huge input without
                # any message cannot fill memory.
                head, current = bytes(current[:-_OVERLAP]), current[-_OVERLAP:]
                lead_is_noise = lead_is_noise and _is_noise(head)
                lead = (lead + head)[:_LEAD_KEEP]
                scanned = len(current)
                continue
            first = starts.pop(0)
            head = bytes(current[:first])
            lead_is_noise = lead_is_noise and _is_noise(head)
            if not lead_is_noise:
                yield 0, (lead + head)[:_LEAD_KEEP]
            current, scanned, started = current[first:], scanned - first, True
            starts = [at - first for at in starts]
        begin = 0
        for at in starts:
            if at > begin:
                number += 1
                yield number, bytes(current[begin:at])
                begin = at
        if begin:
            current, scanned = current[begin:], scanned - begin
    if started and current:
        yield number + 1, bytes(current)
    elif not started and not (lead_is_noise and _is_noise(bytes(current))):
        yield 0, (lead + bytes(current))[:_LEAD_KEEP]


# An MSH header (field separator, 2-5 encoding characters, field separator again) can
# only be the start of a message, even glued to the end of the previous one.
_MSH_HEADER = re.compile(rb"MSH([^A-Za-z0-9\s])[^A-Za-z0-9\s]{2,5}\1")


def _message_starts(buffer: bytes | bytearray, begin: int = 0) -> list[int]:
    starts = set()
    index = buffer.find(b"MSH", begin)
    while index != -1:
        # After a segment terminator, MLLP framing, or a BOM (files concatenated as is).
        after_boundary = index == 0 or buffer[index - 1] in b"\r\n\x0b\x1c"
        if after_boundary or buffer[index - 3 : index] == _BOM or _MSH_HEADER.match(buffer, index):
            starts.add(index)
        index = buffer.find(b"MSH", index + 3)
    return sorted(starts)


def _is_noise(data: bytes) -> bool:
    """True for bytes that carry no message: whitespace, framing, BOMs, batch envelope."""
    text = data.replace(_BOM, b"").translate(None, _MLLP).strip()
    if not text:
        return True
    for line in re.split(rb"[\r\n]+", text):
        if line and line[:3].decode("latin-1") not in _ENVELOPE:
            return False
    return True


def decode_message(raw: bytes | str) -> str:
    """Turn one message's bytes into text: BOM and MLLP framing dropped, UTF-8 with a
    Latin-1 fallback (never fails), segment terminators normalised to CR.

    A LF is a segment terminator only where a segment id follows it (or at the end); a
    LF inside a field (a wrapped phone number, say) stays part of the field.
    """
    if isinstance(raw, bytes):
        # A BOM can only be file debris (a file's start, or the next file's when files
        # were concatenated): drop it wherever it is.
        raw = raw.translate(None, _MLLP).replace(_BOM, b"")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    else:
        text = raw.replace("\x0b", "").replace("\x1c", "").replace("\ufeff", "")
    if "\n" in text:
        text = text.replace("\r\n", "\r")
        if "\n" in text:
            text = re.sub(r"\n(?=[A-Z][A-Z0-9]{2}[^A-Za-z0-9\s]|\s*\Z)", "\r", text)
    return text.strip("\r\n \t")


class Segment:
    """One segment: ``fields[n]`` is field n as in the standard (``fields[0]`` is the id).

    For MSH, ``fields[1]`` is the field separator and ``fields[2]`` the encoding
    characters, so MSH-9 is ``fields[9]`` as everywhere else.
    """

    __slots__ = ("_fields", "_header", "_raw", "_separator", "id")

    def __init__(self, segment_id: str, raw: str, separator: str, header: bool = False) -> None:
        self.id = segment_id
        self._raw = raw
        self._separator = separator
        self._header = header
        self._fields: list[str] | None = None

    @property
    def fields(self) -> list[str]:
        """The fields, split on first use: most segments of a message are never read."""
        if self._fields is None:
            fields = self._raw.split(self._separator)
            fields[0] = self.id
            if self._header:
                fields.insert(1, self._separator)
            self._fields = fields
        return self._fields

    def __repr__(self) -> str:
        return f"Segment({self.id!r}, {len(self.fields) - 1} fields)"


@dataclass(frozen=True, slots=True)
class _Separators:
    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str


@lru_cache(maxsize=16)
def _escape_container(seps: _Separators) -> hl7.Message:
    # python-hl7's unescape reads the separators from a container; an empty message
    # built with ours is enough and is reused for every message with these separators.
    return hl7.Message(
        separators="\r" + seps.field + seps.repetition + seps.component + seps.subcomponent,
        esc=seps.escape,
    )


#: Segment ids already seen to be valid (at most 26 x 36 x 36 exist), to skip the regex.
_KNOWN_IDS: set[str] = set()


def _segment_id(line: str, fs: str) -> str | None:
    """The id of a segment line (``None`` for a blank line)."""
    end = line.find(fs)
    seg_id = (line if end == -1 else line[:end]).strip()
    if not seg_id and not line.strip():
        return None
    return seg_id


class Hl7Message:
    """A decoded message split into segments, with field access by ``FieldPath``."""

    __slots__ = ("_by_id", "_seps", "segments", "text")

    def __init__(self, text: str) -> None:
        """Split ``text`` (CR-separated segments, starting with MSH).

        Raises ``InputError`` when it does not start with a usable MSH segment.
        """
        self.text = text
        if len(text) < 8 or not text.startswith("MSH"):
            raise InputError("not an HL7 v2 message: it does not start with an MSH segment")
        fs = text[3]
        if fs.isalnum() or fs.isspace():
            raise InputError(f"MSH-1 field separator {fs!r} is not usable")
        end = text.find(fs, 4)
        encoding = text[4:end] if end != -1 else text[4:].split("\r", 1)[0]
        if not 1 <= len(encoding) <= 5 or len(set(encoding + fs)) != len(encoding) + 1:
            raise InputError(f"MSH-2 encoding characters {encoding!r} are not usable")
        if any(ch.isalnum() or ch.isspace() for ch in encoding):
            raise InputError(f"MSH-2 encoding characters {encoding!r} are not usable")
        padded = encoding + "^~\\&"[len(encoding) :] if len(encoding) < 4 else encoding
        self._seps = _Separators(fs, padded[0], padded[1], padded[2], padded[3])
        segments: list[Segment] = []
        by_id: dict[str, list[Segment]] = {}
        for line in text.split("\r"):
            # Fast path: a well-formed segment starts with its id and the separator.
            seg_id = line[:3]
            if line[3:4] != fs or seg_id not in _KNOWN_IDS:
                found = _segment_id(line, fs)
                if found is None:
                    continue
                seg_id = found
                if not _SEGMENT_ID.match(seg_id):
                    raise InputError(f"segment {len(segments) + 1} has no valid id: {line[:20]!r}")
                if len(_KNOWN_IDS) < 50_000:
                    _KNOWN_IDS.add(seg_id)
            if seg_id in _ENVELOPE:
                continue
            segment = Segment(seg_id, line, fs, not segments)
            segments.append(segment)
            by_id.setdefault(seg_id, []).append(segment)
        self.segments = segments
        self._by_id = by_id

    def first(self, segment_id: str) -> Segment | None:
        """The first segment with this id, or ``None``."""
        found = self._by_id.get(segment_id)
        return found[0] if found else None

    def all(self, segment_id: str) -> list[Segment]:
        """Every segment with this id, in message order."""
        return self._by_id.get(segment_id, [])

    def value(self, path: FieldPath, scope: dict[str, list[Segment]] | None = None) -> str:
        """The value at ``path`` (unescaped, stripped; HL7's ``""`` null reads as empty).

        Segments named in ``scope`` (an order group, say) are read there; other segments
        in the whole message. A missing segment, field or component reads as ``""``.
        """
        segment = self._segment(path, scope)
        if segment is None:
            return ""
        return self.component(
            segment, path.field, path.repetition, path.component, path.subcomponent
        )

    def repetitions(
        self, path: FieldPath, scope: dict[str, list[Segment]] | None = None
    ) -> list[str]:
        """The value at ``path`` in every repetition of its field (empty ones left out)."""
        segment = self._segment(path, scope)
        if segment is None or path.field >= len(segment.fields):
            return []
        raw = segment.fields[path.field]
        count = raw.count(self._seps.repetition) + 1 if raw else 0
        values = (
            self.component(segment, path.field, rep, path.component, path.subcomponent)
            for rep in range(1, count + 1)
        )
        return [v for v in values if v]

    def raw_repetitions(self, segment: Segment, field_num: int) -> list[str]:
        """The raw (still escaped) repetitions of a field, for composite types like CX."""
        if field_num >= len(segment.fields) or not segment.fields[field_num]:
            return []
        return segment.fields[field_num].split(self._seps.repetition)

    def split_components(self, raw: str) -> list[str]:
        """Components of one raw repetition, unescaped and stripped (first subcomponent
        of each, except that a caller wanting subcomponents uses ``split_subcomponents``)."""
        return [
            self._clean(c.split(self._seps.subcomponent)[0])
            for c in raw.split(self._seps.component)
        ]

    def split_subcomponents(self, raw_component: str) -> list[str]:
        """Subcomponents of one raw component, unescaped and stripped."""
        return [self._clean(s) for s in raw_component.split(self._seps.subcomponent)]

    def raw_components(self, raw: str) -> list[str]:
        """The raw components of one raw repetition."""
        return raw.split(self._seps.component)

    def component(
        self, segment: Segment, field_num: int, rep: int = 1, comp: int = 1, sub: int = 1
    ) -> str:
        """One leaf value, following the first child where the path stops early."""
        fields = segment.fields
        if field_num >= len(fields):
            return ""
        value = fields[field_num]
        if segment.id == "MSH" and field_num <= 2:
            return value if rep == comp == sub == 1 else ""
        seps = self._seps
        if rep > 1 or seps.repetition in value:
            parts = value.split(seps.repetition)
            if rep > len(parts):
                return ""
            value = parts[rep - 1]
        if comp > 1 or seps.component in value:
            parts = value.split(seps.component)
            if comp > len(parts):
                return ""
            value = parts[comp - 1]
        if sub > 1 or seps.subcomponent in value:
            parts = value.split(seps.subcomponent)
            if sub > len(parts):
                return ""
            value = parts[sub - 1]
        return self._clean(value)

    def _clean(self, value: str) -> str:
        if self._seps.escape in value:
            # python-hl7 raises on some malformed escapes (".spX"); the raw text is still
            # more useful than nothing.
            with contextlib.suppress(Exception):
                value = hl7.util.unescape(_escape_container(self._seps), value)
        value = value.strip()
        return "" if value == '""' else value

    def _segment(self, path: FieldPath, scope: dict[str, list[Segment]] | None) -> Segment | None:
        found = scope.get(path.segment) if scope is not None else None
        if found is None:
            found = self._by_id.get(path.segment)
        if not found or path.occurrence > len(found):
            return None
        return found[path.occurrence - 1]
