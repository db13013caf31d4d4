"""The public entry point: exports, format detection, iter_records contracts."""

from __future__ import annotations

import gzip
import importlib
from pathlib import Path

import pytest
from adapters_support import FHIR_SAMPLES, HL7_SAMPLES, SAMPLES, convert, sample

import streams.adapters as adapters
from detectors.errors import ConfigError, InputError
from detectors.events import Event
from streams.adapters import AdapterMemory, Rejected, detect_format, iter_records

PUBLIC = {
    "streams.adapters": {
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
    },
    "streams.adapters.hl7.convert": {"SUPPORTED_MESSAGE_TYPES", "convert_message", "iter_hl7"},
    "streams.adapters.fhir.convert": {
        "SUPPORTED_RESOURCE_TYPES",
        "convert_json",
        "convert_resource",
        "iter_fhir",
    },
    "streams.adapters.tabular": {"iter_table"},
    "streams.adapters.memory": {
        "AdapterMemory",
        "AppointmentMemory",
        "AppointmentState",
        "Place",
        "Rank",
        "ReportOrderMemory",
    },
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_public_api_is_declared(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name), name


def test_formats_are_detected() -> None:
    for path in HL7_SAMPLES:
        assert detect_format(path) == "hl7"
        assert detect_format(path.read_bytes()) == "hl7"
    for path in FHIR_SAMPLES:
        assert detect_format(path) == "fhir"
    assert (
        detect_format(b'{"id": "e1", "type": "order.placed", "time": "2026-03-02T09:30:00Z"}\n')
        == "jsonl"
    )
    assert detect_format(b'[{"resourceType": "Patient"}]') == "fhir"
    assert detect_format(b"PAR1\x00\x00") == "parquet"
    assert detect_format(b"type,time\nx,y\n") == "csv"
    assert detect_format(b"\x0b" + sample("hl7v2/SIU-S12-01.hl7") + b"\x1c\r") == "hl7"
    assert detect_format(gzip.compress(sample("hl7v2/SIU-S12-01.hl7"))) == "hl7"
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format(b"hello world")


def test_format_by_extension_when_content_is_not_decisive(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"just one column\n")
    assert detect_format(path) == "csv"
    empty = tmp_path / "quiet-night.jsonl"  # no events yet: still canonical JSON Lines
    empty.write_bytes(b"")
    assert detect_format(empty) == "jsonl"
    assert list(iter_records(empty)) == []
    hidden = tmp_path / "fhir.jsonl"  # the content decides before the name
    hidden.write_bytes(b'{"resourceType": "Patient", "id": "p1"}\n')
    assert detect_format(hidden) == "fhir"


def test_iter_records_raises_only_for_unopenable_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        iter_records(tmp_path / "missing.hl7")
    with pytest.raises(ConfigError, match="unknown input format"):
        iter_records(b"", "xml")
    # Undetectable content is a rejection, not an exception.
    assert [
        (r.location, r.kind) for r in iter_records(b"hello world") if isinstance(r, Rejected)
    ] == [("file", "invalid")]


def test_aliases_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "feed.hl7.gz"
    path.write_bytes(gzip.compress(sample("hl7v2/SIU-S12-01.hl7") + sample("hl7v2/SIU-S26-01.hl7")))
    events, rejected = convert(path, "hl7v2")
    assert rejected == []
    assert [e.type for e in events] == ["appointment.booked", "appointment.missed"]
    ndjson = tmp_path / "fhir.ndjson.gz"
    ndjson.write_bytes(
        gzip.compress((SAMPLES / "fhir-r4" / "DiagnosticReport-f201.json").read_bytes())
    )
    events, _ = convert(ndjson)
    assert [e.type for e in events] == ["result.reported"]


def test_truncated_gzip_of_canonical_events_keeps_what_was_read(tmp_path: Path) -> None:
    line = b'{"id": "e%d", "type": "order.placed", "time": "2026-03-02T09:00:00+00:00"}\n'
    data = gzip.compress(b"".join(line % i for i in range(2000)))
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    records = list(iter_records(path, "jsonl"))
    events = [r for r in records if isinstance(r, Event)]
    assert events and [e.id for e in events] == [f"e{i}" for i in range(len(events))]
    last = records[-1]
    assert isinstance(last, Rejected)
    assert last.location == "file" and "reading stopped" in last.reason


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    data = gzip.compress(sample("hl7v2/SIU-S12-01.hl7") * 3)
    events, rejected = convert(data[: len(data) - 12], "hl7")
    assert events  # the messages before the damage
    assert rejected and rejected[-1].location == "file" and "reading stopped" in rejected[-1].reason


def test_memory_is_kept_across_files() -> None:
    memory = AdapterMemory()
    convert(sample("hl7v2/SIU-S12-01.hl7"), "hl7", memory=memory)
    moved = sample("hl7v2/SIU-S13-01.hl7").replace(
        b"|||||||20210924093000", b"|||||||20211001093000"
    )
    events, _ = convert(moved, "hl7", memory=memory)
    assert events[0].attrs["previous_start"] == "2021-09-24T07:15:00+00:00"
    assert "36996" in memory.appointments


def test_canonical_jsonl_is_validated() -> None:
    data = (
        b'{"id":"e1","type":"order.placed","time":"2026-03-02T09:30:00+00:00","refs":{"order":"O1"}}\n'
        b"\n"
        b'{"id":"e2","type":"order.placed","time":"2026-03-02T09:30:00"}\n'
        b"[1, 2]\n"
        b"{broken\n"
    )
    records = list(iter_records(data, "jsonl", origin="events.jsonl"))
    assert isinstance(records[0], Event) and records[0].refs == {"order": "O1"}
    assert [(r.origin, r.location) for r in records[1:] if isinstance(r, Rejected)] == [
        ("events.jsonl", "line 3"),
        ("events.jsonl", "line 4"),
        ("events.jsonl", "line 5"),
    ]
    assert "no UTC offset" in records[1].reason  # type: ignore[union-attr]


def test_rejected_has_a_dead_letter_form() -> None:
    (record,) = iter_records(
        b"MSH|^~\\&|A|B|C|D|20260302||ACK^A01|1|P|2.5\rMSA|AA|1\r", "hl7", origin="t"
    )
    assert isinstance(record, Rejected)
    assert record.to_dict() == {
        "origin": "t",
        "location": "message 1",
        "reason": "unsupported message type ACK^A01",
        "kind": "unsupported",
        "excerpt": "MSH|^~\\&|A|B|C|D|20260302||ACK^A01|1|P|2.5\rMSA|AA|1",
    }


def test_every_event_round_trips_through_the_contract() -> None:
    """What the adapters emit is exactly what event_from_dict accepts."""
    from detectors.events import event_from_dict

    for path in [*HL7_SAMPLES, *FHIR_SAMPLES]:
        for record in iter_records(path):
            if isinstance(record, Event):
                assert event_from_dict(record.to_dict()) == record


def test_version_is_importable() -> None:
    assert adapters.FORMATS == ("hl7", "fhir", "csv", "parquet", "jsonl")
