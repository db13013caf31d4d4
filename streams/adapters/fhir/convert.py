"""FHIR R4 JSON -> canonical events.

Input is a single resource, a Bundle (any type; a ``history`` Bundle is read oldest
first), a JSON array of resources, or NDJSON (one resource or Bundle per line).
``convert_resource`` handles one decoded resource; ``iter_fhir`` reads bytes. Neither
raises for bad input: what cannot be used comes out as a ``Rejected`` with its reason.

What each resource maps to is set out in ``docs/adapters.md``. Times without an offset
are read in the mapping's timezone (default Europe/London), a bare date as local
midnight (or rejected, per ``date_only``); events carry UTC epoch seconds. Event ids are
``<Type>/<id>:<type>:<n>``, with ``/_history/<versionId>`` added for facts a new version
can repeat (a reschedule, a re-issued report).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from detectors.errors import InputError
from streams.adapters.fhir.context import BundleIndex, ResourceContext
from streams.adapters.fhir.resources import HANDLERS
from streams.adapters.mapping import SiteMapping, default_mapping
from streams.adapters.memory import AdapterMemory
from streams.adapters.records import INVALID, NO_EVENT, UNSUPPORTED, Record, Rejected, excerpt

__all__ = ["SUPPORTED_RESOURCE_TYPES", "convert_json", "convert_resource", "iter_fhir"]

#: Resource types with a translation.
SUPPORTED_RESOURCE_TYPES: tuple[str, ...] = tuple(HANDLERS)
_BOM = b"\xef\xbb\xbf"


def convert_resource(
    resource: Any,
    mapping: SiteMapping | None = None,
    memory: AdapterMemory | None = None,
    *,
    origin: str = "<fhir>",
    location: str = "resource",
    index: BundleIndex | None = None,
    full_url: str | None = None,
) -> list[Record]:
    """Convert one decoded FHIR resource (a Bundle gives all its entries' records).

    ``index`` resolves references inside a Bundle (filled in for Bundles). ``memory``
    carries appointment starts and report orders between resources. Event times are
    UTC epoch seconds; dateTimes without an offset are read in ``mapping.timezone``.
    Never raises for bad input.
    """
    mapping = mapping or default_mapping()
    memory = memory if memory is not None else AdapterMemory()
    if not isinstance(resource, dict):
        return [
            Rejected(
                origin,
                location,
                "not a JSON object, so not a FHIR resource",
                excerpt(_dump(resource)),
            )
        ]
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        return [
            Rejected(
                origin, location, "no resourceType: not a FHIR resource", excerpt(_dump(resource))
            )
        ]
    if rtype == "Bundle":
        return list(_bundle(resource, mapping, memory, origin, location))
    handler = HANDLERS.get(rtype)
    if handler is None:
        return [
            Rejected(
                origin,
                location,
                f"unsupported resource type {rtype}",
                excerpt(_dump(resource)),
                UNSUPPORTED,
            )
        ]
    ctx = ResourceContext(resource, mapping, memory, origin, location, index, full_url)
    try:
        handler(ctx)
    except InputError as exc:
        ctx.reject(str(exc), INVALID)
    except Exception as exc:  # a bug must cost one resource, not the run
        ctx.reject(f"internal error converting this resource: {type(exc).__name__}: {exc}", INVALID)
    return ctx.out


def _bundle(
    bundle: dict[str, Any], mapping: SiteMapping, memory: AdapterMemory, origin: str, location: str
) -> Iterator[Record]:
    entries = bundle.get("entry")
    if entries is None or entries == []:
        yield Rejected(origin, location, "Bundle has no entries", excerpt(_dump(bundle)), NO_EVENT)
        return
    if not isinstance(entries, list):
        yield Rejected(origin, location, "Bundle.entry is not a list", excerpt(_dump(bundle)))
        return
    index: BundleIndex = {}
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            rtype, rid = resource.get("resourceType"), resource.get("id")
            if isinstance(rtype, str) and isinstance(rid, str):
                index[f"{rtype}/{rid}"] = resource
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                index[full_url] = resource
    numbered = list(enumerate(entries, start=1))
    if bundle.get("type") == "history":
        # A history Bundle lists the newest version first; memory must see them in order.
        numbered.reverse()
    prefix = f"{location} " if location != "resource" else ""
    for number, entry in numbered:
        where = f"{prefix}entry {number}"
        if not isinstance(entry, dict):
            yield Rejected(origin, where, "Bundle entry is not an object", excerpt(_dump(entry)))
            continue
        resource = entry.get("resource")
        if resource is None:
            method = (
                entry.get("request", {}).get("method")
                if isinstance(entry.get("request"), dict)
                else None
            )
            reason = (
                "a deletion, not a care event" if method == "DELETE" else "entry has no resource"
            )
            yield Rejected(origin, where, reason, excerpt(_dump(entry)), NO_EVENT)
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        yield from convert_resource(
            resource, mapping, memory, origin=origin, location=where, index=index, full_url=full_url
        )


def convert_json(
    data: bytes | str,
    mapping: SiteMapping | None = None,
    memory: AdapterMemory | None = None,
    *,
    origin: str = "<fhir>",
    location: str = "resource",
) -> list[Record]:
    """Convert one JSON document (a resource, a Bundle or an array of resources), as a
    Kafka message value would hold. Never raises for bad input."""
    try:
        decoded = orjson.loads(_strip_bom(data))
    except orjson.JSONDecodeError as exc:
        return [Rejected(origin, location, f"not valid JSON: {exc}", excerpt(data))]
    return _document(decoded, mapping, memory, origin, location)


def _document(
    decoded: Any,
    mapping: SiteMapping | None,
    memory: AdapterMemory | None,
    origin: str,
    location: str,
) -> list[Record]:
    if isinstance(decoded, list):
        prefix = f"{location} " if location != "resource" else ""
        out: list[Record] = []
        for number, item in enumerate(decoded, start=1):
            out.extend(
                convert_resource(
                    item, mapping, memory, origin=origin, location=f"{prefix}item {number}"
                )
            )
        return out
    return convert_resource(decoded, mapping, memory, origin=origin, location=location)


def iter_fhir(
    chunks: Iterable[bytes],
    mapping: SiteMapping | None = None,
    memory: AdapterMemory | None = None,
    *,
    origin: str = "<fhir>",
) -> Iterator[Record]:
    """Events and rejections from FHIR JSON bytes: NDJSON is read line by line
    (``location`` ``"line N"``), anything else as one JSON document. Never raises for
    bad input."""
    mapping = mapping or default_mapping()
    memory = memory if memory is not None else AdapterMemory()
    lines = _lines(chunks)
    first_number, first = next(((n, line) for n, line in lines if line.strip()), (0, b""))
    if not first:
        return
    try:
        decoded = orjson.loads(first)
    except orjson.JSONDecodeError:
        # Not one JSON value per line: the whole input is one (pretty-printed) document.
        rest = b"\n".join(line for _, line in lines)
        yield from convert_json(first + b"\n" + rest, mapping, memory, origin=origin)
        return
    yield from _document(decoded, mapping, memory, origin, f"line {first_number}")
    for number, line in lines:
        if not line.strip():
            continue
        try:
            decoded = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield Rejected(origin, f"line {number}", f"not valid JSON: {exc}", excerpt(line))
            continue
        yield from _document(decoded, mapping, memory, origin, f"line {number}")


def _lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    number = 0
    pending = b""
    started = False
    for chunk in chunks:
        if not started and chunk:
            chunk = (pending + chunk).removeprefix(_BOM)
            pending = b""
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                pending = chunk
                continue
            started = True
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            yield number, line
    if pending:
        yield number + 1, pending


def _strip_bom(data: bytes | str) -> bytes | str:
    if isinstance(data, bytes):
        return data.removeprefix(_BOM)
    return data.removeprefix("\ufeff")


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)
