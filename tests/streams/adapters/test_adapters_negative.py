"""Truncated and corrupted samples are rejected with a reason; nothing raises."""

from __future__ import annotations

from pathlib import Path

import pytest
from adapters_support import FHIR_SAMPLES, HL7_SAMPLES, convert, sample

from streams.adapters import INVALID, UNSUPPORTED, Rejected


def only_rejections(data: bytes, fmt: str) -> list[Rejected]:
    events, rejected = convert(data, fmt)
    assert events == []
    assert rejected, "a bad input must leave a trace"
    for record in rejected:
        assert record.reason and "internal error" not in record.reason
    return rejected


@pytest.mark.parametrize("path", HL7_SAMPLES, ids=lambda p: p.name)
def test_hl7_cut_inside_msh(path: Path) -> None:
    data = path.read_bytes()
    start = data.find(b"MSH")
    for cut in (start + 5, start + 60):
        (rejected,) = only_rejections(data[:cut], "hl7")
        assert rejected.kind == INVALID
        assert rejected.location == "message 1"
        assert "MSH" in rejected.reason


@pytest.mark.parametrize("path", HL7_SAMPLES, ids=lambda p: p.name)
def test_hl7_cut_anywhere_never_raises(path: Path) -> None:
    data = path.read_bytes()
    for cut in range(0, len(data), max(1, len(data) // 40)):
        _, rejected = convert(data[:cut], "hl7")
        for record in rejected:
            assert record.reason and "internal error" not in record.reason


@pytest.mark.parametrize(
    ("name", "old", "new", "reason"),
    [
        (
            "SIU-S12-01.hl7",
            b"\rSCH|12345|36996|",
            b"\rXCH|12345|36996|",
            "no appointment id in SCH-2.1, SCH-1.1",
        ),
        (
            "SIU-S12-01.hl7",
            b"TQ1|||||||20210924093000+0215",
            b"TQ1|||||||2021-09-24 09:30",
            "TQ1-7.1 '2021-09-24 09:30' is not an HL7 timestamp",
        ),
        (
            "SIU-S12-01.hl7",
            b"|202109141120+0215|SECURITY|",
            b"||SECURITY|",
            "no message time in EVN-2.1, MSH-7.1",
        ),
        ("SIU-S12-01.hl7", b"MSH|^~\\&|", b"MSH|abcd|", "MSH-2 encoding characters"),
        ("SIU-S12-01.hl7", b"|MSG00012|", b"||", "MSH-10 (message control id) is empty"),
        ("SIU-S12-01.hl7", b"\rPID|", b"\r%%%|x\rPID|", "has no valid id"),
        (
            "ORU-R01-01.hl7",
            b"|200203150730+0215||BLB|F|",
            b"|yesterday||BLB|F|",
            "OBR-22.1 'yesterday' is not an HL7 timestamp",
        ),
        ("ADT-A03-01.hl7", b"|20150209113419+0110|", b"|2015020911341+0110|", "PV1-45.1"),
        (
            "LAB-ORM-1.hl7",
            b"ORC|NW|88502218|82503246|",
            b"ORC|NW|||",
            None,  # ORC ids gone, OBR-2 still names the order: still valid
        ),
        ("MDM-T02-01.hl7", b"TXA|1|DI|", b"TXA|1|DS|", None),  # becomes valid: control case
    ],
)
def test_hl7_corruptions(name: str, old: bytes, new: bytes, reason: str | None) -> None:
    data = sample(f"hl7v2/{name}")
    assert old in data
    corrupted = data.replace(old, new, 1)
    if reason is None:
        events, rejected = convert(corrupted, "hl7")
        assert events and rejected == []
        return
    (rejected,) = only_rejections(corrupted, "hl7")
    assert reason in rejected.reason
    assert rejected.excerpt.startswith("MSH")


def test_hl7_order_without_any_id() -> None:
    data = sample("hl7v2/LAB-ORM-1.hl7").replace(b"|88502218|82503246|", b"|||")
    (rejected,) = only_rejections(data, "hl7")
    assert "no order id in ORC-2.1, OBR-2.1, ORC-3.1, OBR-3.1" in rejected.reason


def test_hl7_one_bad_group_keeps_the_others() -> None:
    data = sample("hl7v2/LAB-ORU-1.hl7").replace(b"OBR|1|855238581|890775544|", b"OBR|1|||")
    events, rejected = convert(data, "hl7")
    assert [e.refs for e in events] == [{"order": "88502218"}]
    assert [(r.location, r.kind) for r in rejected] == [("message 1 OBR 2", INVALID)]
    assert "no order id" in rejected[0].reason


def test_hl7_unsupported_type_and_garbage() -> None:
    data = sample("hl7v2/SIU-S12-01.hl7").replace(b"|SIU^S12^SIU_S12|", b"|XYZ^Q99|")
    (rejected,) = only_rejections(data, "hl7")
    assert (rejected.kind, rejected.reason) == (UNSUPPORTED, "unsupported message type XYZ^Q99")
    (garbage,) = only_rejections(b"\x00\x01binary\xff\xfe", "hl7")
    assert garbage.location == "before message 1" and "before the first MSH" in garbage.reason


def test_hl7_garbage_between_messages_costs_one_message() -> None:
    one = sample("hl7v2/SIU-S12-01.hl7")
    two = sample("hl7v2/SIU-S26-01.hl7")
    events, rejected = convert(one + b"\r\x00\xffjunk\r" + two, "hl7")
    assert [e.type for e in events] == ["appointment.missed"]
    assert [r.location for r in rejected] == ["message 1"]


@pytest.mark.parametrize("path", FHIR_SAMPLES, ids=lambda p: p.name)
def test_fhir_truncated(path: Path) -> None:
    data = path.read_bytes()
    for cut in (1, len(data) // 3, len(data) // 2, len(data) - 3):
        rejected = only_rejections(data[:cut], "fhir")
        assert all("not valid JSON" in r.reason for r in rejected)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            b'"start": "2013-12-10T09:00:00Z"',
            b'"start": "2013-12-10T25:00:00Z"',
            "Appointment.start",
        ),
        (b'"status": "booked"', b'"status": "maybe"', "unknown Appointment.status 'maybe'"),
        (b'"created": "2013-10-10"', b'"created": 20131010', "Appointment.created"),
        (b'"resourceType": "Appointment",', b"", "no resourceType"),
        (b'"id": "example",', b"", "Appointment has no id"),
        (b'"participant": [', b'"participant": 7, "x": [', None),  # tolerated: no patient
    ],
)
def test_fhir_corruptions(old: bytes, new: bytes, reason: str | None) -> None:
    data = sample("fhir-r4/Appointment-example.json")
    assert old in data
    corrupted = data.replace(old, new, 1)
    if reason is None:
        events, _ = convert(corrupted, "fhir")
        assert events and events[0].patient is None
        return
    rejected = only_rejections(corrupted, "fhir")
    assert reason in rejected[0].reason


def test_fhir_odd_documents() -> None:
    (number,) = only_rejections(b"42", "fhir")
    assert "not a JSON object" in number.reason
    (bundle,) = only_rejections(b'{"resourceType": "Bundle", "entry": {"a": 1}}', "fhir")
    assert "Bundle.entry is not a list" in bundle.reason
    rejected = only_rejections(
        b'{"resourceType": "Bundle", "entry": [1, {"request": {"method": "DELETE"}}]}', "fhir"
    )
    assert [r.reason for r in rejected] == [
        "Bundle entry is not an object",
        "a deletion, not a care event",
    ]
