"""Shared helpers for the adapter tests: sample files and quick conversions.

(A plain module, not conftest.py, so ``import adapters_support`` cannot pick up another
directory's conftest.)
"""

from __future__ import annotations

from pathlib import Path

from detectors.events import Event, format_time
from streams.adapters import AdapterMemory, Rejected, SiteMapping, iter_records

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "samples"
HL7_SAMPLES = sorted((SAMPLES / "hl7v2").glob("*.hl7"))
FHIR_SAMPLES = sorted(p for p in (SAMPLES / "fhir-r4").glob("*.json") if p.name != "package.json")


def sample(name: str) -> bytes:
    """The bytes of a sample file, ``hl7v2/...`` or ``fhir-r4/...``."""
    return (SAMPLES / name).read_bytes()


def convert(
    source: Path | bytes,
    fmt: str | None = None,
    mapping: SiteMapping | None = None,
    memory: AdapterMemory | None = None,
) -> tuple[list[Event], list[Rejected]]:
    """All records of ``source``, split into events and rejections."""
    events: list[Event] = []
    rejected: list[Rejected] = []
    for record in iter_records(source, fmt, mapping, memory=memory):
        if isinstance(record, Rejected):
            rejected.append(record)
        else:
            events.append(record)
    return events, rejected


def iso(event: Event) -> str:
    """An event's time in the wire form (UTC, +00:00)."""
    return format_time(event.time)
