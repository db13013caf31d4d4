"""The ``carewatch convert`` command through ``main()``, on the public samples."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
HL7 = SAMPLES / "hl7v2"
FHIR = SAMPLES / "fhir-r4"


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def by_id(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in events}


def test_hl7_and_fhir_samples_become_canonical_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.jsonl"
    inputs = [HL7 / "SIU-S12-01.hl7", HL7 / "LAB-ORU-1.hl7", HL7 / "MDM-T02-01.hl7"]
    inputs.append(FHIR / "DiagnosticReport-f201.json")
    assert main(["convert", *map(str, inputs), "--out", str(out)]) == 0

    events = by_id(read_jsonl(out.read_bytes()))
    booked = events["MSG00012:appointment.booked:1"]
    assert booked["type"] == "appointment.booked"
    assert booked["time"] == "2021-09-14T09:05:00+00:00"
    assert booked["patient"] == "PATID1234"
    assert booked["refs"] == {"appointment": "36996"}
    assert booked["attrs"]["start"] == "2021-09-24T07:15:00+00:00"
    assert booked["source"]["message_type"] == "SIU^S12"
    first, second = events["182:result.reported:1"], events["182:result.reported:2"]
    assert (first["refs"]["order"], second["refs"]["order"]) == ("88502218", "855238581")
    assert first["attrs"]["test"] == "24317-0" and first["attrs"]["abnormal"] is False
    [report] = [e for e in events.values() if e["source"]["format"] == "fhir-r4"]
    assert report["id"].startswith("DiagnosticReport/f201#")
    assert (report["type"], report["patient"]) == ("result.reported", "f201")
    assert report["attrs"]["test"] == "429858000" and report["time"] == "2012-12-01T11:00:00+00:00"

    err = capsys.readouterr().err.splitlines()
    # The MDM's document type is not mapped: reported, one line, with origin and place.
    assert f"{HL7 / 'MDM-T02-01.hl7'}: message 1: no-event: MDM^T02: document type 'DI'" in err[0]
    assert err[-1] == f"carewatch convert: {len(events)} events, 1 rejected (1 no-event)"


def test_output_goes_to_stdout_by_default_and_gzip_by_name(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    inputs = [str(p) for p in sorted(HL7.glob("*.hl7"))]
    assert main(["convert", *inputs]) == 0
    plain = capsysbinary.readouterr().out
    gz = tmp_path / "events.jsonl.gz"
    assert main(["convert", *inputs, "--out", str(gz)]) == 0
    assert gzip.decompress(gz.read_bytes()) == plain
    types = [e["type"] for e in read_jsonl(plain)]
    assert types.count("appointment.booked") == 2 and "encounter.discharged" in types


def test_stdin_is_read_with_a_dash(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    raw = (HL7 / "ORM-O01-01.hl7").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["convert", "-"]) == 0
    [event] = read_jsonl(capsysbinary.readouterr().out)
    assert event["id"] == "MSG00018:order.placed:1"
    assert event["type"] == "order.placed" and event["refs"]["order"]


def test_one_memory_across_inputs_makes_a_moved_appointment_a_reschedule(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    later = json.loads((FHIR / "Appointment-example.json").read_text())
    later["start"] = "2013-12-17T09:00:00Z"
    later["end"] = "2013-12-17T11:00:00Z"
    later["meta"] = {"lastUpdated": "2013-12-05T10:00:00Z"}
    second = tmp_path / "Appointment-moved.json"
    second.write_text(json.dumps(later))

    assert main(["convert", str(FHIR / "Appointment-example.json"), str(second)]) == 0
    booked, moved = read_jsonl(capsysbinary.readouterr().out)
    assert booked["type"] == "appointment.booked"
    assert moved["type"] == "appointment.rescheduled"
    assert moved["refs"] == {"appointment": "example"}
    assert moved["attrs"]["previous_start"] == "2013-12-10T09:00:00+00:00"
    assert moved["attrs"]["start"] == "2013-12-17T09:00:00+00:00"
    assert moved["time"] == "2013-12-05T10:00:00+00:00"


def test_mapping_file_is_used(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    mapping = tmp_path / "site.yaml"
    mapping.write_text("codes:\n  document_kinds:\n    clinic-letter: [DI]\n")
    assert main(["convert", str(HL7 / "MDM-T02-01.hl7"), "--mapping", str(mapping)]) == 0
    [event] = read_jsonl(capsysbinary.readouterr().out)
    assert event["type"] == "document.sent"
    assert event["attrs"] == {"document_type": "DI", "kind": "clinic-letter"}
    assert event["refs"]["encounter"] == "10000001"


def test_exit_status_is_non_zero_only_when_nothing_converts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.hl7"
    bad.write_bytes(b"this is not HL7 at all\n")
    truncated = tmp_path / "truncated.hl7"
    truncated.write_bytes((HL7 / "SIU-S12-01.hl7").read_bytes()[:120])
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")

    assert main(["convert", "--format", "hl7", str(bad), str(truncated)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{bad}: ") and ": invalid: " in err[0]
    assert err[1].startswith(f"{truncated}: message 1: invalid: ")
    assert err[-1] == "carewatch convert: 0 events, 2 rejected (2 invalid)"

    # One good input among bad ones: the run is a success, the bad ones are reported.
    assert main(["convert", "--format", "hl7", str(bad), str(HL7 / "SIU-S26-01.hl7")]) == 0
    assert capsys.readouterr().err.splitlines()[-1].endswith("1 events, 1 rejected (1 invalid)")
    # Input understood but carrying no care event, or no records at all: not a failure.
    assert main(["convert", str(HL7 / "SIU-S14-01.hl7")]) == 0
    assert main(["convert", "--format", "jsonl", str(empty)]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == "carewatch convert: 0 events, 0 rejected"


def test_a_missing_input_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.jsonl"
    assert (
        main(
            ["convert", str(HL7 / "SIU-S12-01.hl7"), str(tmp_path / "nope.hl7"), "--out", str(out)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("carewatch convert: error: ") and "does not exist" in err
    assert not out.exists()  # checked before anything is written
