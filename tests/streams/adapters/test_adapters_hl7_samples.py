"""Every public HL7 v2 sample converts into exactly the events it carries."""

from __future__ import annotations

from typing import Any

import pytest
from adapters_support import HL7_SAMPLES, SAMPLES, convert, iso, sample

from streams.adapters import NO_EVENT, AdapterMemory, mapping_from_text

# file -> [(id, type, time (UTC), patient, refs, attrs that must be present)]
EXPECTED: dict[str, list[tuple[str, str, str, str, dict[str, str], dict[str, Any]]]] = {
    "ADT-A03-01.hl7": [
        (
            "MSG00001:encounter.discharged:1",
            "encounter.discharged",
            "2015-02-09T10:24:19+00:00",  # PV1-45 20150209113419+0110
            "PATID1234",
            {"encounter": "40007716"},
            {"site": "HOMERTON UNIVER", "specialty": "SUR"},
        ),
        (
            "MSG00001:patient.died:1",  # PID-30 = Y
            "patient.died",
            "2008-08-25T10:01:30+00:00",  # PID-29 20080825111630+0115
            "PATID1234",
            {},
            {},
        ),
    ],
    "ADT-A04-01.hl7": [
        (
            "MSG00001:encounter.arrived:1",
            "encounter.arrived",
            "2015-02-08T10:24:19+00:00",  # PV1-44 20150208113419+0110
            "PATID1234",
            {"encounter": "40007716"},
            {"specialty": "SUR"},
        )
    ],
    "ADT-A08-01.hl7": [
        (
            "MSG00001:patient.died:1",
            "patient.died",
            "2008-08-25T10:01:30+00:00",
            "PATID1234",
            {},
            {},
        )
    ],
    "LAB-ORM-1.hl7": [
        (
            "MSGID20060307110114:order.placed:1",
            "order.placed",
            # ORC-9 201410060929 has no offset: Europe/London, BST in October (+01:00).
            "2014-10-06T08:29:00+00:00",
            "10006579",
            {"order": "88502218"},
            {"test": "24317-0", "priority": "routine"},
        )
    ],
    "LAB-ORU-1.hl7": [
        (
            "182:result.reported:1",
            "result.reported",
            # This sample puts its result time in OBR-23, so OBR-22 is empty: MSH-7.
            "2014-10-05T23:45:00+00:00",
            "10006579",
            {"order": "88502218"},
            {"test": "24317-0", "abnormal": False, "critical": False, "result_status": "F"},
        ),
        (
            "182:result.reported:2",
            "result.reported",
            "2014-10-05T23:45:00+00:00",
            "10006579",
            {"order": "855238581"},
            {"test": "26464-8", "abnormal": False, "critical": False},
        ),
    ],
    "MDM-T02-01.hl7": [],  # TXA-2 "DI" (diagnostic imaging) is not a mapped document kind
    "OML-O21-01.hl7": [
        (
            "MSG00019:order.placed:1",
            "order.placed",
            "2021-10-20T09:11:00+00:00",  # ORC-9 202110201126+0215
            "PATID1234",
            {"order": "1101"},  # ORC-2 placer
            {"test": "57698-3", "priority": "routine", "priority_code": "R", "site": "GHH"},
        )
    ],
    "ORM-O01-01.hl7": [
        (
            "MSG00018:order.placed:1",
            "order.placed",
            "2021-10-20T09:11:00+00:00",
            "PATID1234",
            {"order": "1101"},
            {"test": "24725-4", "priority": "routine", "site": "GHH"},
        )
    ],
    "ORM-O01-02.hl7": [
        (
            "MSG00019:order.placed:1",
            "order.placed",
            "2021-10-20T09:11:00+00:00",
            "PATID1234",
            {"order": "1101"},
            {"test": "24725-4", "priority": "routine"},
        )
    ],
    "ORU-R01-01.hl7": [
        (
            "2.16.840.1.114222.4.3.3.5.1.2-20120314235954.325:result.reported:1",
            "result.reported",
            "2002-03-15T05:15:00+00:00",  # OBR-22 200203150730+0215
            "14",
            {"order": "845439"},  # OBR-2 placer (ORC-2 is empty)
            {"test": "625-4", "abnormal": True, "critical": False, "flags": ["A"]},
        )
    ],
    "SIU-S12-01.hl7": [
        (
            "MSG00012:appointment.booked:1",
            "appointment.booked",
            "2021-09-14T09:05:00+00:00",  # MSH-7 202109141120+0215
            "PATID1234",
            {"appointment": "36996"},  # SCH-2 filler id
            {"start": "2021-09-24T07:15:00+00:00", "clinic": "055", "site": "GH Clinic"},
        )
    ],
    "SIU-S12-02.hl7": [
        (
            "MSG00012:appointment.booked:1",
            "appointment.booked",
            "2021-08-10T09:15:00+00:00",
            "PATID1234",
            {"appointment": "36996"},
            {"start": "2021-08-18T09:15:00+00:00", "clinic": "LabUnit101", "site": "GHH Hospital"},
        )
    ],
    "SIU-S13-01.hl7": [
        (
            "MSG00013:appointment.rescheduled:1",
            "appointment.rescheduled",
            "2021-09-20T09:11:00+00:00",
            "PATID1234",
            {"appointment": "36996"},
            {"start": "2021-09-24T07:15:00+00:00", "reason": "Add"},
        )
    ],
    "SIU-S14-01.hl7": [],  # only the room changed: no care event
    "SIU-S15-01.hl7": [
        (
            "MSG00015:appointment.cancelled:1",
            "appointment.cancelled",
            "2021-09-23T09:11:00+00:00",
            "PATID1234",
            {"appointment": "36996"},
            {"previous_start": "2021-09-24T07:15:00+00:00", "reason": "Add"},
        )
    ],
    "SIU-S26-01.hl7": [
        (
            "MSG00026:appointment.missed:1",
            "appointment.missed",
            "2021-09-24T07:45:00+00:00",
            "PATID1234",
            {"appointment": "36996"},
            {"start": "2021-09-24T07:15:00+00:00"},
        )
    ],
    "node-hl7-complete_nist_ORU_R01_2.5.1_SampleTestCase1.hl7": [
        (
            "NIST-100929110701660:result.reported:1",
            "result.reported",
            "2008-08-19T01:00:00+00:00",  # OBR-22 200808181800-0700
            "9817566735",
            {"order": "9700123"},  # no placer id anywhere: OBR-3 filler
            {"test": "10368-9", "abnormal": True, "critical": False, "flags": ["H"]},
        )
    ],
}


def test_every_sample_has_expectations() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in HL7_SAMPLES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_converts_to_its_events(name: str) -> None:
    events, rejected = convert(SAMPLES / "hl7v2" / name, "hl7")
    assert [r for r in rejected if r.kind != NO_EVENT] == []
    assert len(events) == len(EXPECTED[name])
    for event, (eid, etype, time, patient, refs, attrs) in zip(events, EXPECTED[name], strict=True):
        assert event.id == eid
        assert event.type == etype
        assert iso(event) == time
        assert event.patient == patient
        assert event.refs == refs
        assert {k: event.attrs.get(k) for k in attrs} == attrs
        assert event.source is not None
        assert event.source["format"] == "hl7v2"
        assert event.source["message_id"] == eid.rsplit(":", 2)[0]


def test_samples_without_events_say_why() -> None:
    _, rejected = convert(SAMPLES / "hl7v2" / "MDM-T02-01.hl7", "hl7")
    assert [(r.kind, r.location) for r in rejected] == [(NO_EVENT, "message 1")]
    assert "'DI'" in rejected[0].reason and "codes.document_kinds" in rejected[0].reason
    _, rejected = convert(SAMPLES / "hl7v2" / "SIU-S14-01.hl7", "hl7")
    assert rejected[0].kind == NO_EVENT and "'Booked'" in rejected[0].reason


def test_source_names_message_type() -> None:
    events, _ = convert(SAMPLES / "hl7v2" / "SIU-S12-01.hl7", "hl7")
    assert events[0].source == {
        "format": "hl7v2",
        "message_id": "MSG00012",
        "message_type": "SIU^S12",
    }


def test_all_samples_in_one_file_give_the_same_events() -> None:
    # Several messages in one file, with BOMs in the middle and no terminator between.
    each = []
    for path in HL7_SAMPLES:
        events, _ = convert(path, "hl7")
        each.extend(e.to_dict() for e in events)
    joined, rejected = convert(b"".join(p.read_bytes() for p in HL7_SAMPLES), "hl7")
    assert [r for r in rejected if r.kind != NO_EVENT] == []
    assert [e.to_dict() for e in joined if e.type != "appointment.rescheduled"] == [
        e for e in each if e["type"] != "appointment.rescheduled"
    ]
    assert {r.location for r in rejected} == {"message 6", "message 14"}


def test_reschedule_takes_previous_start_from_memory() -> None:
    memory = AdapterMemory()
    convert(sample("hl7v2/SIU-S12-01.hl7"), "hl7", memory=memory)
    moved = sample("hl7v2/SIU-S13-01.hl7").replace(
        b"TQ1|||||||20210924093000+0215", b"TQ1|||||||20211001093000+0215"
    )
    events, _ = convert(moved, "hl7", memory=memory)
    assert events[0].attrs["previous_start"] == "2021-09-24T07:15:00+00:00"
    assert events[0].attrs["start"] == "2021-10-01T07:15:00+00:00"


def test_reschedule_previous_start_from_a_site_field() -> None:
    mapping = mapping_from_text("hl7v2:\n  fields:\n    previous_start: [ZSC-1]\n")
    moved = sample("hl7v2/SIU-S13-01.hl7") + b"ZSC|202109200900\r"
    events, _ = convert(moved, "hl7", mapping)
    # ZSC-1 has no offset: Europe/London, BST in September.
    assert events[0].attrs["previous_start"] == "2021-09-20T08:00:00+00:00"


def test_reason_codes_map_to_initiated_by() -> None:
    mapping = mapping_from_text("codes:\n  initiated_by:\n    hospital: [Add, HOSP]\n")
    for name in ("SIU-S13-01.hl7", "SIU-S15-01.hl7"):
        events, _ = convert(sample(f"hl7v2/{name}"), "hl7", mapping)
        assert events[0].attrs["initiated_by"] == "hospital"
    default = mapping_from_text("codes:\n  initiated_by_default: patient\n")
    events, _ = convert(sample("hl7v2/SIU-S15-01.hl7"), "hl7", default)
    assert events[0].attrs["initiated_by"] == "patient"


def test_s14_with_arrived_status_is_attended_once() -> None:
    arrived = sample("hl7v2/SIU-S14-01.hl7").replace(b"|||Booked|\r", b"|||Arrived|\r", 1)
    memory = AdapterMemory()
    events, _ = convert(arrived, "hl7", memory=memory)
    assert [(e.id, e.type, e.refs) for e in events] == [
        ("MSG00014:appointment.attended:1", "appointment.attended", {"appointment": "36996"})
    ]
    again = arrived.replace(b"|MSG00014|", b"|MSG00099|")
    events, rejected = convert(again, "hl7", memory=memory)
    assert events == [] and "already attended" in rejected[0].reason
    # The same message redelivered decides the same way: same event, same id.
    events, _ = convert(arrived, "hl7", memory=memory)
    assert [e.id for e in events] == ["MSG00014:appointment.attended:1"]


def test_s14_that_moves_the_start_is_a_reschedule() -> None:
    memory = AdapterMemory()
    convert(sample("hl7v2/SIU-S12-01.hl7"), "hl7", memory=memory)
    moved = sample("hl7v2/SIU-S14-01.hl7").replace(
        b"20210924093000+0215|2021", b"20210925093000+0215|2021"
    )
    events, _ = convert(moved, "hl7", memory=memory)
    assert events[0].type == "appointment.rescheduled"
    assert events[0].attrs["previous_start"] == "2021-09-24T07:15:00+00:00"
    assert events[0].attrs["start"] == "2021-09-25T07:15:00+00:00"


def test_mdm_with_a_mapped_document_type_is_sent_and_can_be_a_notice() -> None:
    mapping = mapping_from_text(
        "codes:\n"
        "  document_kinds:\n    appointment-letter: [DI]\n"
        "  notice_documents:\n    DI: letter\n"
    )
    events, rejected = convert(sample("hl7v2/MDM-T02-01.hl7"), "hl7", mapping)
    assert rejected == []
    sent, notified = events
    assert sent.id == "PS1-20080131160038:document.sent:1"
    assert sent.type == "document.sent"
    assert iso(sent) == "2008-01-31T13:45:00+00:00"  # EVN-2 200801311600+0215
    assert sent.patient == "987654321"
    assert sent.refs == {
        "document": "1.2.840.317.5947431.51.20080131160038",
        "encounter": "10000001",
    }
    # a notice document is for the patient
    assert sent.attrs == {
        "kind": "appointment-letter",
        "document_type": "DI",
        "recipient": "patient",
    }
    assert notified.type == "patient.notified" and notified.attrs["channel"] == "letter"


def test_document_not_yet_authenticated_is_not_sent() -> None:
    mapping = mapping_from_text("codes:\n  document_kinds:\n    clinic-letter: [DI]\n")
    draft = sample("hl7v2/MDM-T02-01.hl7").replace(b"|1-1||AU|", b"|1-1||IP|")
    events, rejected = convert(draft, "hl7", mapping)
    assert events == [] and "'IP'" in rejected[0].reason


def test_site_timezone_reads_times_without_offset() -> None:
    mapping = mapping_from_text("timezone: America/New_York\n")
    events, _ = convert(sample("hl7v2/LAB-ORM-1.hl7"), "hl7", mapping)
    assert iso(events[0]) == "2014-10-06T13:29:00+00:00"  # 09:29 EDT
    # A time with an offset is unaffected by the site timezone.
    events, _ = convert(sample("hl7v2/SIU-S12-01.hl7"), "hl7", mapping)
    assert iso(events[0]) == "2021-09-14T09:05:00+00:00"


@pytest.mark.parametrize(
    ("rule", "patient"),
    [
        ("identifier_types: [SS]", "123456789"),
        ("assigning_authorities: [USSSA]", "123456789"),
        ("assigning_authorities: [2.16.1]", "PATID1234"),  # HD universal id
        ("identifier_types: [NH, NHS]", "PATID1234"),  # fallback to the first
        ("identifier_types: [NH]\n    fallback_to_first: false", None),
    ],
)
def test_patient_id_rule(rule: str, patient: str | None) -> None:
    mapping = mapping_from_text(f"hl7v2:\n  patient_id:\n    {rule}\n")
    events, _ = convert(sample("hl7v2/ADT-A08-01.hl7"), "hl7", mapping)
    assert events[0].patient == patient


def test_event_ids_can_name_the_sender() -> None:
    mapping = mapping_from_text("hl7v2:\n  event_id_includes_sender: true\n")
    events, _ = convert(sample("hl7v2/SIU-S12-01.hl7"), "hl7", mapping)
    assert events[0].id == "SCHApp/MSG00012:appointment.booked:1"


def test_a04_can_be_mapped_to_attended() -> None:
    mapping = mapping_from_text("hl7v2:\n  a04_event: appointment.attended\n")
    events, _ = convert(sample("hl7v2/ADT-A04-01.hl7"), "hl7", mapping)
    assert [(e.type, e.refs) for e in events] == [("appointment.attended", {"appointment": "50"})]


def test_death_by_discharge_disposition() -> None:
    died = sample("hl7v2/ADT-A03-01.hl7").replace(b"|Admitted as Inpatient^Sample^ACR|", b"|20|")
    died = died.replace(b"|20080825111630+0115|Y|", b"||N|")
    events, _ = convert(died, "hl7")
    assert [e.type for e in events] == ["encounter.discharged", "patient.died"]
    assert events[1].time == events[0].time  # no PID-29: died at discharge


def test_a08_death_without_time_uses_the_message_time() -> None:
    no_time = sample("hl7v2/ADT-A08-01.hl7").replace(b"|20080825111630+0115|Y|", b"||Y|")
    events, _ = convert(no_time, "hl7")
    assert iso(events[0]) == "2029-08-01T05:51:24+00:00"  # EVN-2 20290801070624+0115
    assert events[0].attrs == {"death_time_known": False}


def test_order_cancel_and_priority() -> None:
    cancel = sample("hl7v2/LAB-ORM-1.hl7").replace(b"ORC|NW|", b"ORC|CA|")
    events, _ = convert(cancel, "hl7")
    assert [(e.type, e.refs) for e in events] == [("order.cancelled", {"order": "88502218"})]
    stat = sample("hl7v2/OML-O21-01.hl7").replace(b"|||R|Pain|", b"|||S|Pain|")
    events, _ = convert(stat, "hl7")
    assert events[0].attrs["priority"] == "stat" and events[0].attrs["priority_code"] == "S"


def test_critical_flags() -> None:
    critical = sample("hl7v2/LAB-ORU-1.hl7").replace(b"|4.06|tera.l-1||N|", b"|4.06|tera.l-1||HH|")
    events, _ = convert(critical, "hl7")
    assert (events[0].attrs["abnormal"], events[0].attrs["critical"]) == (True, True)
    assert (events[1].attrs["abnormal"], events[1].attrs["critical"]) == (False, False)


def test_notification_segment_rule() -> None:
    mapping = mapping_from_text(
        "hl7v2:\n  notifications:\n"
        "    - {segment: ZNT, appointment: [ZNT-1], channel: [ZNT-2], time: [ZNT-3]}\n"
    )
    message = (
        b"MSH|^~\\&|LETTERS|TRUST|CW|TRUST|202603020930||ZLT^Z01|L-1|P|2.5\r"
        b"PID|1||P000123^^^TRUST^MR\r"
        b"ZNT|A-88|SMS|202603021015\r"
    )
    events, rejected = convert(message, "hl7", mapping)
    assert rejected == []
    assert [(e.id, e.type, iso(e), e.patient, e.refs, e.attrs) for e in events] == [
        (
            "L-1:patient.notified:1",
            "patient.notified",
            "2026-03-02T10:15:00+00:00",  # GMT in March
            "P000123",
            {"appointment": "A-88"},
            {"channel": "sms", "channel_code": "SMS"},
        )
    ]


def test_a_documents_recipient_comes_from_the_site_mapping() -> None:
    mdm = sample("hl7v2/MDM-T02-01.hl7")
    plain, _ = convert(mdm, "hl7", mapping_from_text("codes:\n  emit_unmapped_documents: true\n"))
    assert all("recipient" not in e.attrs for e in plain if e.type == "document.sent")
    [doc_type] = {e.attrs["document_type"] for e in plain if e.type == "document.sent"}
    text = (
        f"codes:\n  emit_unmapped_documents: true\n  document_recipients:\n    gp: [{doc_type}]\n"
    )
    mapped, _ = convert(mdm, "hl7", mapping_from_text(text))
    assert {e.attrs["recipient"] for e in mapped if e.type == "document.sent"} == {"gp"}


def bare_s15() -> bytes:
    """The S15 sample without its AIL segment: nothing in it says where the appointment is."""
    segments = sample("hl7v2/SIU-S15-01.hl7").split(b"\r")
    return b"\r".join(seg for seg in segments if not seg.startswith(b"AIL|"))


def test_a_cancellation_carries_the_place_of_the_booking_it_cancels() -> None:
    """An S15 without PV1 and AIL (as many are) says nothing of where the appointment
    was; after the S12 that booked it, it carries that booking's clinic and site, so its
    failures can be routed and sliced. Redelivered, or after a checkpoint, the same."""
    alone, _ = convert(bare_s15(), "hl7")
    assert "clinic" not in alone[0].attrs and "site" not in alone[0].attrs
    memory = AdapterMemory()
    booked, _ = convert(sample("hl7v2/SIU-S12-01.hl7"), "hl7", memory=memory)
    assert (booked[0].attrs["clinic"], booked[0].attrs["site"]) == ("055", "GH Clinic")
    restored = AdapterMemory.from_dict(memory.to_dict())
    cancelled, _ = convert(bare_s15(), "hl7", memory=memory)
    assert [e.type for e in cancelled] == ["appointment.cancelled"]
    assert cancelled[0].attrs == {
        "previous_start": "2021-09-24T07:15:00+00:00",
        "reason": "Add",
        "clinic": "055",
        "site": "GH Clinic",
    }
    again, _ = convert(bare_s15(), "hl7", memory=memory)
    assert [e.to_dict() for e in again] == [e.to_dict() for e in cancelled]
    from_checkpoint, _ = convert(bare_s15(), "hl7", memory=restored)
    assert [e.to_dict() for e in from_checkpoint] == [e.to_dict() for e in cancelled]


def test_a_rebooking_elsewhere_moves_the_remembered_place() -> None:
    memory = AdapterMemory()
    convert(sample("hl7v2/SIU-S12-01.hl7"), "hl7", memory=memory)
    # the S13 sample moves the appointment; here it also moves to another clinic
    moved = sample("hl7v2/SIU-S13-01.hl7").replace(
        b"|055^Room01^^GH Clinic^", b"|077^Room02^^GH East^"
    )
    events, _ = convert(moved, "hl7", memory=memory)
    assert events and events[0].attrs["clinic"] == "077"
    cancelled, _ = convert(bare_s15(), "hl7", memory=memory)
    assert (cancelled[0].attrs["clinic"], cancelled[0].attrs["site"]) == ("077", "GH East")
