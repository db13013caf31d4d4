"""Input adapters: HL7 v2, FHIR R4, CSV/Parquet event logs and canonical JSON Lines in,
canonical ``detectors.events.Event``s out.

The one entry point most callers need::

    mapping = load_mapping("site-mapping.yaml")      # or None for the defaults
    for record in iter_records("feed.hl7", None, mapping):
        if isinstance(record, Rejected):
            ...  # dead letter: record.origin, record.location, record.reason
        else:
            ...  # an Event

``iter_records`` never raises for bad content: every input record comes out as an
``Event`` or a ``Rejected``. It raises ``InputError`` at call time only when the input
cannot be opened at all, and ``ConfigError`` for an unknown format name. Times without a
UTC offset are read in the site mapping's timezone (default Europe/London).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from detectors.errors import ConfigError, InputError
from streams.adapters.fhir.convert import convert_json, convert_resource, iter_fhir
from streams.adapters.hl7.convert import convert_message, iter_hl7
from streams.adapters.jsonl import iter_jsonl
from streams.adapters.mapping import SiteMapping, default_mapping, load_mapping, mapping_from_text
from streams.adapters.memory import AdapterMemory, AppointmentMemory, ReportOrderMemory
from streams.adapters.records import INVALID, NO_EVENT, UNSUPPORTED, Record, Rejected, excerpt

__all__ = [
    "FORMATS",
    "INVALID",
    "NO_EVENT",
    "UNSUPPORTED",
    "AdapterMemory",
    "AppointmentMemory",
    "Record",
    "Rejected",
    "ReportOrderMemory",
    "SiteMapping",
    "convert_json",
    "convert_message",
    "convert_resource",
    "default_mapping",
    "detect_format",
    "iter_records",
    "iter_stream",
    "load_mapping",
    "mapping_from_text",
]

_ALIASES = {"hl7v2": "hl7", "fhir-r4": "fhir", "ndjson": "fhir", "json": "fhir"}
_EXTENSIONS = {
    ".hl7": "hl7",
    ".er7": "hl7",
    ".hl7v2": "hl7",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "fhir",
    ".jsonl": "jsonl",  # content decides first; this names an empty file's format
}
_SNIFF_BYTES = 65536
_CHUNK_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"

#: A file path, or the input's bytes (a Kafka message value, an upload).
Source = str | os.PathLike[str] | bytes


def detect_format(path_or_bytes: Source) -> str:
    """Tell ``hl7``, ``fhir``, ``csv``, ``parquet`` or ``jsonl`` (canonical events) from
    the content (gzip-compressed content is looked into) and, where the content is not
    decisive, from the file extension.

    Raises ``InputError`` saying what to do when the format cannot be told or the file
    cannot be read.
    """
    name = "" if isinstance(path_or_bytes, bytes) else os.fspath(path_or_bytes)
    head = path_or_bytes[:_SNIFF_BYTES] if isinstance(path_or_bytes, bytes) else _read_head(name)
    if head.startswith(_GZIP_MAGIC):
        head = _gunzip_head(head)
        name = name.removesuffix(".gz")
    found = _sniff(head)
    if found:
        return found
    by_extension = _EXTENSIONS.get(Path(name).suffix.lower()) if name else None
    if by_extension:
        return by_extension
    first_line = head.lstrip(_BOM).split(b"\n", 1)[0]
    if any(sep in first_line for sep in (b",", b";", b"\t", b"|")):
        return "csv"
    what = name or "the input"
    raise InputError(f"cannot tell the format of {what}; name it as one of {', '.join(FORMATS)}")


def iter_records(
    source: Source,
    fmt: str | None = None,
    mapping: SiteMapping | None = None,
    *,
    memory: AdapterMemory | None = None,
    origin: str | None = None,
) -> Iterator[Record]:
    """Every record of ``source`` (a path or bytes) as an ``Event`` or a ``Rejected``.

    ``fmt`` is one of ``FORMATS`` (``None``: ``detect_format``). ``mapping`` defaults to
    the packaged defaults. ``memory`` carries appointment starts and report orders
    across inputs (pass the same object to keep them between files, or a restored
    checkpoint); ``origin`` names the input in rejections (default: the path).
    Gzip-compressed input is read transparently. Event times are UTC epoch seconds;
    input times without an offset are read in ``mapping.timezone``.

    Raises ``ConfigError`` for an unknown ``fmt`` and ``InputError`` when a path cannot
    be opened; after that, bad content only ever yields ``Rejected`` records.
    """
    fmt = _format_name(fmt)
    if not isinstance(source, bytes):
        path = os.fspath(source)
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise InputError(f"cannot open {path}: {exc.strerror or exc}") from None
    name = (
        origin
        if origin is not None
        else ("<bytes>" if isinstance(source, bytes) else os.fspath(source))
    )
    memory = memory if memory is not None else AdapterMemory()
    if fmt is None:
        return _detected(source, mapping, memory, name)
    return _read(fmt, _Chunks(source), mapping, memory, name, "file")


def iter_stream(
    stream: BinaryIO,
    fmt: str | None = None,
    mapping: SiteMapping | None = None,
    *,
    memory: AdapterMemory | None = None,
    origin: str = "-",
) -> Iterator[Record]:
    """Like ``iter_records`` for an open binary stream (standard input, a socket file),
    read in chunks as it arrives; CSV and Parquet are read whole. With ``fmt=None`` the
    format is told from the first 64 KiB."""
    fmt = _format_name(fmt)
    memory = memory if memory is not None else AdapterMemory()
    head = stream.read(_SNIFF_BYTES)
    if head.startswith(_GZIP_MAGIC) or (fmt is not None and not _READERS[fmt].streams):
        whole = head + stream.read()
        yield from (_detected if fmt is None else _read_as(fmt))(whole, mapping, memory, origin)
        return
    if fmt is None:
        try:
            fmt = detect_format(head) if head else "jsonl"
        except InputError as exc:
            yield Rejected(origin, "stream", str(exc), excerpt(head), INVALID)
            return
        if not _READERS[fmt].streams:
            yield from _read(fmt, _Chunks(head + stream.read()), mapping, memory, origin, "stream")
            return
    yield from _read(fmt, _StreamChunks(head, stream), mapping, memory, origin, "stream")


# --- one table of formats ---------------------------------------------------------------


class _Chunks:
    """The bytes of a source in 1 MiB chunks, gunzipped if need be. An I/O or gzip
    error ends the chunks and is kept in ``error`` (to become a rejection)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.error = ""

    def __iter__(self) -> Iterator[bytes]:
        try:
            if isinstance(self.source, bytes):
                if self.source.startswith(_GZIP_MAGIC):
                    yield from _gunzip_stream([self.source])
                else:
                    yield self.source
                return
            with open(self.source, "rb") as handle:
                raw = iter(lambda: handle.read(_CHUNK_BYTES), b"")
                first = next(raw, b"")
                if first.startswith(_GZIP_MAGIC):
                    yield from _gunzip_stream(_chain(first, raw))
                else:
                    yield first
                    yield from raw
        except (OSError, EOFError, zlib.error) as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def whole(self) -> Source:
        """The source for a reader that takes it whole: the path or bytes as they are, or
        the gunzipped bytes."""
        return b"".join(self) if _is_gzip(self.source) else self.source


class _StreamChunks(_Chunks):
    """An open stream's bytes in chunks, after the ``head`` already read from it."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__(head)
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        try:
            while chunk := self.stream.read(_CHUNK_BYTES):
                yield chunk
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    @property
    def head(self) -> bytes:
        assert isinstance(self.source, bytes)
        return self.source


#: Reads one format: (chunks, mapping, memory, origin, place) -> records, where
#: ``place`` names the input in a rejection (``file`` or ``stream``).
_ReadFn = Callable[[_Chunks, SiteMapping | None, AdapterMemory, str, str], Iterator[Record]]


@dataclass(frozen=True)
class _Reader:
    """How one input format is read."""

    read: _ReadFn
    #: read chunk by chunk as the input arrives (else the whole input at once)
    streams: bool = True
    #: the reader turns a reading error into a rejection itself (else ``_read`` does)
    reports_errors: bool = False


def _hl7(
    chunks: _Chunks, mapping: SiteMapping | None, memory: AdapterMemory, origin: str, place: str
) -> Iterator[Record]:
    return iter_hl7(chunks, mapping, memory, origin=origin)


def _fhir(
    chunks: _Chunks, mapping: SiteMapping | None, memory: AdapterMemory, origin: str, place: str
) -> Iterator[Record]:
    return iter_fhir(chunks, mapping, memory, origin=origin)


def _jsonl(
    chunks: _Chunks, mapping: SiteMapping | None, memory: AdapterMemory, origin: str, place: str
) -> Iterator[Record]:
    return iter_jsonl(chunks, origin, place)


def _table(fmt: str) -> _ReadFn:
    def read(
        chunks: _Chunks, mapping: SiteMapping | None, memory: AdapterMemory, origin: str, place: str
    ) -> Iterator[Record]:
        # Only tables need pandas, which takes a third of a second to import: not paid
        # by the other formats.
        from streams.adapters.tabular import iter_table

        yield from iter_table(chunks.whole(), fmt, mapping, origin=origin)

    return read


_READERS: dict[str, _Reader] = {
    "hl7": _Reader(_hl7),
    "fhir": _Reader(_fhir),
    "csv": _Reader(_table("csv"), streams=False),
    "parquet": _Reader(_table("parquet"), streams=False),
    "jsonl": _Reader(_jsonl, reports_errors=True),
}
#: Format names ``detect_format`` returns and ``iter_records`` accepts.
FORMATS: tuple[str, ...] = tuple(_READERS)


def _format_name(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    name = _ALIASES.get(fmt.lower(), fmt.lower())
    if name not in _READERS:
        raise ConfigError(f"unknown input format {name!r}; use one of {', '.join(FORMATS)}")
    return name


def _read(
    fmt: str,
    chunks: _Chunks,
    mapping: SiteMapping | None,
    memory: AdapterMemory,
    origin: str,
    place: str,
) -> Iterator[Record]:
    """The records of ``chunks`` read as ``fmt``; a reading error that stops the input
    ends them as a rejection."""
    reader = _READERS[fmt]
    records = reader.read(chunks, mapping, memory, origin, place)
    if reader.reports_errors:
        return records  # one generator less between each record and its reader
    return _then_reading_error(records, chunks, origin, place)


def _then_reading_error(
    records: Iterator[Record], chunks: _Chunks, origin: str, place: str
) -> Iterator[Record]:
    yield from records
    if chunks.error:
        yield Rejected(origin, place, f"reading stopped: {chunks.error}", "", INVALID)


def _read_as(
    fmt: str,
) -> Callable[[Source, SiteMapping | None, AdapterMemory, str], Iterator[Record]]:
    def read(
        source: Source, mapping: SiteMapping | None, memory: AdapterMemory, origin: str
    ) -> Iterator[Record]:
        return _read(fmt, _Chunks(source), mapping, memory, origin, "file")

    return read


def _detected(
    source: Source, mapping: SiteMapping | None, memory: AdapterMemory, origin: str
) -> Iterator[Record]:
    """The records of ``source`` in the format ``detect_format`` tells."""
    try:
        fmt = detect_format(source)
    except InputError as exc:
        yield Rejected(origin, "file", str(exc), "", INVALID)
        return
    yield from _read(fmt, _Chunks(source), mapping, memory, origin, "file")


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _gunzip_stream(chunks: Iterator[bytes] | list[bytes]) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(wbits=31)
    for chunk in chunks:
        data = chunk
        while data:
            yield decompressor.decompress(data, _CHUNK_BYTES)
            data = decompressor.unconsumed_tail
        if decompressor.eof and decompressor.unused_data:
            # Concatenated gzip members (as `cat a.gz b.gz` makes): start the next one.
            rest = decompressor.unused_data
            decompressor = zlib.decompressobj(wbits=31)
            yield from _gunzip_stream([rest])
            return
    yield decompressor.flush()
    if not decompressor.eof:
        raise EOFError("the gzip data ends early (truncated file?)")


def _is_gzip(source: Source) -> bool:
    if isinstance(source, bytes):
        return source.startswith(_GZIP_MAGIC)
    return _read_head(os.fspath(source), 2) == _GZIP_MAGIC


def _read_head(path: str, size: int = _SNIFF_BYTES) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _gunzip_head(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(wbits=31).decompress(head, _SNIFF_BYTES)
    except zlib.error:
        return head


def _sniff(head: bytes) -> str | None:
    text = head.lstrip(_BOM + b"\x0b \t\r\n")
    if text.startswith(b"PAR1"):
        return "parquet"
    if text[:3] in (b"MSH", b"FHS", b"BHS"):
        return "hl7"
    if text[:1] in (b"{", b"["):
        first_line = text.split(b"\n", 1)[0]
        try:
            value = orjson.loads(first_line)
        except orjson.JSONDecodeError:
            return "fhir" if b'"resourceType"' in text else "jsonl"
        if isinstance(value, list):
            value = value[0] if value else {}
        if isinstance(value, dict) and "resourceType" in value:
            return "fhir"
        return "jsonl"
    return None
