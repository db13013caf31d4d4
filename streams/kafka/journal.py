"""The journal: what a partition's engine has been fed, in source-offset order.

The engine is deterministic, so its state after a sequence of inputs is fully given by
that sequence. The worker therefore keeps, per partition, the inputs themselves (events,
ticks, advances, source watermarks) in a faust table with a changelog, and rebuilds an
engine after a restart or rebalance by replaying them with its output switched off.

Entries are written in chunks (one table key per processed batch of a partition:
``PPPPP.OOOOOOOOOOOOOOOOOOOO``, partition and first source offset, zero-padded so that
key order is offset order; the value also says which offset the chunk runs to, so the
chunks of a complete journal cover the offsets without holes). An input stops mattering
once the watermark is past ``keep_until``: the latest of its event time and any session
start it names, plus the horizon (largest deadline + late retention + dedupe window +
allowed lateness). ``patient.died`` events, and contacts of patients who died, are kept
for good: the contact-after-death detector remembers them forever.

A prune rewrites the journal as of the offset it is made at, with the outputs up to
that offset already on the broker; its pieces say so (``pruned_at``, and how many there
are), and a restore carries on from that offset even when the committed offset is
earlier (the pruned journal no longer holds the state at any earlier offset). The
pieces go under keys of their own and the chunks they replace are deleted only after
them, so a worker killed half-way through a prune leaves the previous journal whole: a
restore uses the latest prune whose pieces are all there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from detectors.contract import ExpectationDetector
from detectors.errors import EventError
from detectors.events import Event, event_from_dict, parse_time
from detectors.rules import Settings

__all__ = [
    "Chunk",
    "Entry",
    "chunk_key",
    "decode_chunk",
    "encode_chunk",
    "event_entry",
    "horizon_of",
    "keep_until",
    "parse_chunk_key",
    "prune",
    "split_chunks",
]

FOREVER = float("inf")
_CONTACTS = frozenset({"appointment.booked", "patient.notified", "document.sent"})

# Entry kinds.
EVENT, TICK, ADVANCE, WATERMARK = "e", "t", "a", "w"


@dataclass(slots=True)
class Entry:
    """One journaled input. ``time`` is epoch seconds (UTC): the event time, or the
    control message's time. ``raw`` is the event's JSON (events only); ``source`` the
    partition a watermark came from.

    Events also carry what pruning needs, so that a prune never parses the journal
    again (build them with ``event_entry``): ``until``, the watermark after which the
    event no longer matters (``keep_until``), and ``died`` / ``contact``, the patient
    whose death the event records or whom it contacts."""

    offset: int
    kind: str
    time: float
    raw: bytes = b""
    source: int = -1
    until: float = FOREVER
    died: str | None = None
    contact: str | None = None

    def to_json(self) -> list[Any]:
        if self.kind == EVENT:
            return [self.offset, EVENT, orjson.Fragment(self.raw)]
        if self.kind == WATERMARK:
            return [self.offset, WATERMARK, self.time, self.source]
        return [self.offset, self.kind, self.time]


def event_entry(offset: int, ev: Event, raw: bytes, horizon: float) -> Entry:
    """The journal entry of event ``ev`` (JSON ``raw``) at source offset ``offset``."""
    entry = Entry(offset, EVENT, ev.time, raw, until=keep_until(ev, horizon))
    if ev.type == "patient.died":
        entry.died = ev.patient
    elif ev.type in _CONTACTS:
        entry.contact = ev.patient
    return entry


def chunk_key(partition: int, first_offset: int, pruned_at: int | None = None) -> str:
    """Table key of a chunk starting at ``first_offset`` of ``partition``. The pieces
    of a pruned journal also carry the prune's offset, so that they never overwrite the
    chunks they replace before they are all written."""
    key = f"{partition:05d}.{first_offset:020d}"
    return key if pruned_at is None else f"{key}.{pruned_at:020d}"


def parse_chunk_key(key: str) -> tuple[int, int]:
    """``(partition, first_offset)`` of a chunk key."""
    p, o = key.split(".")[:2]
    return int(p), int(o)


def encode_chunk(
    entries: Iterable[Entry], last: int, pruned_at: int | None = None, pieces: int = 1
) -> bytes:
    """A chunk's table value: its entries and ``last``, the last source offset the chunk
    accounts for (messages that leave no entry, such as rejected ones, count too), so
    that a restore can tell a complete journal from one with holes. ``pruned_at``: the
    chunk is one of ``pieces`` pieces of the journal as a prune rewrote it at that
    offset (see ``Chunk``)."""
    doc: dict[str, Any] = {"to": last, "e": [e.to_json() for e in entries]}
    if pruned_at is not None:
        doc["pruned_at"] = pruned_at
        doc["pieces"] = pieces
    return orjson.dumps(doc)


@dataclass(slots=True)
class Chunk:
    """A decoded chunk: the entries, the last offset accounted for, and for a piece of
    a pruned journal the offset the prune was made at and how many pieces it wrote.
    Such a piece holds the state as of that offset only: entries the prune dropped may
    still have been needed by the state at an earlier offset."""

    last: int
    entries: list[Entry]
    pruned_at: int | None = None
    pieces: int = 1


def decode_chunk(value: bytes, horizon: float) -> Chunk:
    """A chunk value decoded (events keep their JSON; the rest is re-read from it,
    ``horizon`` as for ``keep_until``)."""
    doc = orjson.loads(value)
    out = []
    for item in doc["e"]:
        offset, kind = item[0], item[1]
        if kind == EVENT:
            obj = item[2]
            out.append(event_entry(offset, event_from_dict(obj), orjson.dumps(obj), horizon))
        elif kind == WATERMARK:
            out.append(Entry(offset, WATERMARK, float(item[2]), source=int(item[3])))
        else:
            out.append(Entry(offset, kind, float(item[2])))
    pruned_at = doc.get("pruned_at")
    if pruned_at is None:
        return Chunk(int(doc["to"]), out)
    return Chunk(int(doc["to"]), out, int(pruned_at), int(doc.get("pieces", 1)))


#: Largest chunk value written (bytes of entries), well under Kafka's 1 MB default limit.
MAX_CHUNK_BYTES = 256 * 1024


def split_chunks(entries: list[Entry], first: int, last: int) -> list[tuple[int, int, list[Entry]]]:
    """Cut the entries covering offsets ``first..last`` into ``(from, to, entries)``
    pieces of at most about ``MAX_CHUNK_BYTES``, covering the same offsets without holes."""
    pieces: list[tuple[int, list[Entry]]] = [(first, [])]
    size = 0
    for e in entries:
        n = len(e.raw) + 48
        if size + n > MAX_CHUNK_BYTES and pieces[-1][1]:
            pieces.append((e.offset, []))
            size = 0
        pieces[-1][1].append(e)
        size += n
    out = []
    for i, (start, items) in enumerate(pieces):
        end = pieces[i + 1][0] - 1 if i + 1 < len(pieces) else last
        out.append((start, end, items))
    return out


def horizon_of(settings: Settings, allowed_lateness: float) -> float:
    """Seconds behind the watermark after which an input can no longer change any
    output: the largest deadline any detector can set, plus late retention, the
    correction horizon (the engine keeps what could still change a decision that long),
    the dedupe window, the allowed lateness and a day of margin (clinic sessions are
    kept the correction horizon past their start, which that term covers)."""
    longest = 0.0
    for det in settings.detectors:
        thresholds = getattr(det, "thresholds", None)
        if isinstance(det, ExpectationDetector) and thresholds is not None:
            values = list(thresholds.defaults.values())
            for _, vals in thresholds.overrides:
                values.extend(vals.values())
            longest = max([longest, *values])
    longest = max(longest, 7 * 86400.0)  # built-ins without thresholds (letters: 7d)
    return (
        longest
        + settings.late_retention
        + settings.correction_horizon
        + settings.dedupe_window
        + allowed_lateness
        + 86400.0
    )


def keep_until(ev: Event, horizon: float) -> float:
    """The watermark after which event ``ev`` no longer matters (see module doc)."""
    latest = ev.time
    for name in ("start", "previous_start"):
        value = ev.attrs.get(name)
        if isinstance(value, str):
            with contextlib.suppress(EventError):
                latest = max(latest, parse_time(value, field_name=name))
    return latest + horizon


def prune(entries: list[Entry], watermark: float, horizon: float) -> tuple[list[Entry], float]:
    """The entries still needed at ``watermark`` (epoch seconds, UTC), and the
    watermark at which the next of them expires (``inf`` if none will). Of the control
    entries only recent ones and the latest per kind (and per source) are kept, since
    only the highest watermark they set matters."""
    dead = {e.died for e in entries if e.died is not None}
    latest: dict[tuple[str, int], int] = {}
    for i, e in enumerate(entries):
        if e.kind != EVENT:
            latest[(e.kind, e.source)] = i
    keep_idx = set(latest.values())
    out = []
    next_due = FOREVER
    for i, e in enumerate(entries):
        if e.kind == EVENT:
            if e.died is not None or (e.contact is not None and e.contact in dead):
                out.append(e)
                continue
            until = e.until
        elif i in keep_idx:
            out.append(e)
            continue
        else:
            until = e.time + horizon
        if until >= watermark:
            out.append(e)
            next_due = min(next_due, until)
    return out, next_due
