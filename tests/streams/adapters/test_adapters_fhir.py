"""FHIR R4: the public examples, and each resource's mapping on synthetic resources."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from adapters_support import FHIR_SAMPLES, SAMPLES, convert, iso

from detectors.events import Event
from streams.adapters import (
    INVALID,
    NO_EVENT,
    AdapterMemory,
    Rejected,
    convert_json,
    convert_resource,
    mapping_from_text,
)

# file -> (id, type, time, patient, refs, attrs that must be present) or (kind, reason part)
EXPECTED: dict[str, Any] = {
    "Appointment-example.json": (
        "Appointment/example:appointment.booked:1",
        "appointment.booked",
        # "created": "2013-10-10" is a bare date: midnight in London, BST in October.
        "2013-10-09T23:00:00+00:00",
        "example",
        {"appointment": "example"},
        {"start": "2013-12-10T09:00:00+00:00", "clinic": "1", "specialty": "394814009"},
    ),
    "DiagnosticReport-f201.json": (
        "DiagnosticReport/f201#7e14d259bcc258a6:result.reported:1",
        "result.reported",
        "2012-12-01T11:00:00+00:00",  # issued 12:00+01:00
        "f201",
        {"document": "f201"},  # no basedOn: no order
        {"test": "429858000", "abnormal": False, "critical": False},
    ),
    "DiagnosticReport-102.json": (
        "DiagnosticReport/102#1a2958048a04d650:result.reported:1",
        "result.reported",
        "2008-06-17T23:23:00+00:00",  # issued 09:23+10:00
        "pat2",
        {"document": "102"},
        {"test": "38269-7", "abnormal": False, "critical": False, "status": "final"},
    ),
    "DocumentReference-example.json": (
        "DocumentReference/example:document.sent:1",
        "document.sent",
        "2005-12-23T22:43:41+00:00",  # date 09:43:41+11:00
        "xcda",
        {"document": "example", "encounter": "xcda"},
        {"kind": "clinic-letter", "document_type": "34108-1"},  # LOINC Outpatient Note
    ),
    "Appointment-2docs.json": (INVALID, "no event time"),  # no created, no meta
    "Appointment-examplereq.json": (NO_EVENT, "'proposed'"),
    "Communication-example.json": (NO_EVENT, "no recipient is the patient"),  # to a clinician
    "Encounter-example.json": (NO_EVENT, "'in-progress'"),
    "Patient-example.json": (NO_EVENT, "not deceased"),
    "ServiceRequest-example.json": (INVALID, "no event time"),  # no authoredOn, no meta
    "Task-example1.json": (NO_EVENT, "focus is not a DiagnosticReport"),  # a fulfilment task
}


def test_every_sample_has_expectations() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in FHIR_SAMPLES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str) -> None:
    events, rejected = convert(SAMPLES / "fhir-r4" / name, "fhir")
    expected = EXPECTED[name]
    if len(expected) == 2:
        kind, reason = expected
        assert events == []
        assert [(r.kind, r.location) for r in rejected] == [(kind, "resource")]
        assert reason in rejected[0].reason
        return
    eid, etype, time, patient, refs, attrs = expected
    assert rejected == []
    (event,) = events
    assert (event.id, event.type, iso(event), event.patient, event.refs) == (
        eid,
        etype,
        time,
        patient,
        refs,
    )
    assert {k: event.attrs.get(k) for k in attrs} == attrs
    assert event.source is not None and event.source["format"] == "fhir-r4"


def test_samples_as_a_bundle_and_as_ndjson() -> None:
    resources = [json.loads(p.read_bytes()) for p in FHIR_SAMPLES]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }
    events, rejected = convert(orjson.dumps(bundle), "fhir")
    assert [e.type for e in events] == [
        "appointment.booked",
        "result.reported",
        "result.reported",
        "document.sent",
    ]
    # One line of JSON reads as NDJSON with one line: locations say so.
    assert len(rejected) == 7 and all(r.location.startswith("line 1 entry ") for r in rejected)
    pretty, _ = convert(json.dumps(bundle, indent=2).encode(), "fhir")
    assert [e.to_dict() for e in pretty] == [e.to_dict() for e in events]
    ndjson = b"\n".join(orjson.dumps(r) for r in resources) + b"\n"
    events2, rejected2 = convert(ndjson, "fhir")
    assert [e.to_dict() for e in events2] == [e.to_dict() for e in events]
    assert sorted(r.location for r in rejected2)[0] == "line 1"


def appointment(version: str, status: str, start: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": "A-88",
        "meta": {"versionId": version, "lastUpdated": f"2026-03-0{version}T10:15:00Z"},
        "status": status,
        "start": start,
        "created": "2026-03-01T09:00:00Z",
        "participant": [
            {"actor": {"reference": "Patient/P000123"}, "status": "accepted"},
            {"actor": {"reference": "Location/CARD-1"}, "status": "accepted"},
        ],
        **extra,
    }


def run(
    resources: list[dict[str, Any]], memory: AdapterMemory, text: str = ""
) -> list[Event | Rejected]:
    mapping = mapping_from_text(text) if text else None
    out: list[Event | Rejected] = []
    for resource in resources:
        out.extend(convert_resource(resource, mapping, memory))
    return out


def test_appointment_lifecycle_uses_memory() -> None:
    memory = AdapterMemory()
    out = run(
        [
            appointment("1", "booked", "2026-03-09T09:00:00Z"),
            appointment("2", "booked", "2026-03-16T09:00:00Z"),  # moved: reschedule
            appointment("3", "booked", "2026-03-16T09:00:00Z", comment="x"),  # no change
            appointment("4", "arrived", "2026-03-16T09:00:00Z"),
            appointment("5", "fulfilled", "2026-03-16T09:00:00Z"),  # still one attendance
        ],
        memory,
        "codes:\n  initiated_by_default: hospital\n",
    )
    events = [r for r in out if isinstance(r, Event)]
    assert [(e.id, e.type, iso(e)) for e in events] == [
        (
            "Appointment/A-88:appointment.booked:1",
            "appointment.booked",
            "2026-03-01T09:00:00+00:00",
        ),
        (
            "Appointment/A-88/_history/2:appointment.rescheduled:1",
            "appointment.rescheduled",
            "2026-03-02T10:15:00+00:00",
        ),
        (
            "Appointment/A-88:appointment.attended:1",
            "appointment.attended",
            "2026-03-04T10:15:00+00:00",
        ),
    ]
    assert events[1].attrs == {
        "start": "2026-03-16T09:00:00+00:00",
        "previous_start": "2026-03-09T09:00:00+00:00",
        "initiated_by": "hospital",
        "clinic": "CARD-1",
    }
    assert all(e.patient == "P000123" for e in events)
    assert [r.reason.split(": ", 1)[1] for r in out if isinstance(r, Rejected)] == [
        "updated without a change of start",
        "appointment was already attended",
    ]


def test_redelivered_version_gives_the_same_event() -> None:
    memory = AdapterMemory()
    first = run([appointment("1", "booked", "2026-03-09T09:00:00Z")], memory)
    moved = appointment("2", "booked", "2026-03-16T09:00:00Z")
    once = run([moved], memory)
    again = run([moved], memory)
    assert [e.to_dict() for e in again if isinstance(e, Event)] == [
        e.to_dict() for e in once if isinstance(e, Event)
    ]
    assert isinstance(first[0], Event) and isinstance(once[0], Event)
    assert once[0].attrs["previous_start"] == "2026-03-09T09:00:00+00:00"


def test_memory_survives_a_checkpoint() -> None:
    memory = AdapterMemory()
    run([appointment("1", "booked", "2026-03-09T09:00:00Z")], memory)
    restored = AdapterMemory.from_dict(json.loads(json.dumps(memory.to_dict())))
    out = run([appointment("2", "booked", "2026-03-16T09:00:00Z")], restored)
    assert (
        isinstance(out[0], Event) and out[0].attrs["previous_start"] == "2026-03-09T09:00:00+00:00"
    )


def test_cancelled_and_noshow() -> None:
    memory = AdapterMemory()
    cancel = appointment(
        "2",
        "cancelled",
        "2026-03-09T09:00:00Z",
        cancelationReason={"coding": [{"code": "prov"}]},
    )
    out = run([appointment("1", "booked", "2026-03-09T09:00:00Z"), cancel], memory)
    assert isinstance(out[1], Event)
    assert (out[1].type, out[1].attrs) == (
        "appointment.cancelled",
        {
            "previous_start": "2026-03-09T09:00:00+00:00",
            "initiated_by": "hospital",
            "reason": "prov",
        },
    )
    noshow = run([appointment("9", "noshow", "2026-03-09T09:00:00Z")], AdapterMemory())
    assert isinstance(noshow[0], Event) and noshow[0].type == "appointment.missed"


def test_history_bundle_is_read_oldest_first() -> None:
    newest_first = [
        appointment("2", "booked", "2026-03-16T09:00:00Z"),
        appointment("1", "booked", "2026-03-09T09:00:00Z"),
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [{"resource": r} for r in newest_first],
    }
    records = convert_json(orjson.dumps(bundle))
    assert [r.type for r in records if isinstance(r, Event)] == [
        "appointment.booked",
        "appointment.rescheduled",
    ]


def test_communication_to_patient_is_a_notice() -> None:
    resource = {
        "resourceType": "Communication",
        "id": "C-1",
        "status": "completed",
        "about": [{"reference": "Appointment/A-88"}],
        "medium": [{"coding": [{"system": "http://example.org/medium", "code": "SMS"}]}],
        "subject": {"reference": "Patient/P000123"},
        "recipient": [{"reference": "Patient/P000123"}],
        "sent": "2026-03-02T10:20:00",  # no offset: London, GMT in March
    }
    (event,) = convert_resource(resource)
    assert isinstance(event, Event)
    assert (event.id, event.type, iso(event), event.patient, event.refs, event.attrs) == (
        "Communication/C-1:patient.notified:1",
        "patient.notified",
        "2026-03-02T10:20:00+00:00",
        "P000123",
        {"appointment": "A-88"},
        {"channel": "sms", "channel_code": "SMS"},
    )


def test_service_request_placed_and_revoked() -> None:
    order = {
        "resourceType": "ServiceRequest",
        "id": "O-1",
        "meta": {"versionId": "1", "lastUpdated": "2026-03-02T09:31:00Z"},
        "status": "active",
        "intent": "order",
        "priority": "asap",
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "57698-3"},
                {"system": "local", "code": "LIP"},
            ]
        },
        "subject": {"reference": "Patient/P1"},
        "authoredOn": "2026-03-02T09:30:00Z",
    }
    mapping = mapping_from_text("fhir:\n  test_code_systems: [local]\n")
    (placed,) = convert_resource(order, mapping)
    assert isinstance(placed, Event)
    assert (placed.id, placed.type, iso(placed), placed.refs, placed.attrs) == (
        "ServiceRequest/O-1:order.placed:1",
        "order.placed",
        "2026-03-02T09:30:00+00:00",
        {"order": "O-1"},
        {"test": "LIP", "priority": "urgent", "priority_code": "asap"},
    )
    # A later version of the same order repeats the same id: deduplicated, not re-opened.
    (again,) = convert_resource(
        {**order, "meta": {"versionId": "2"}, "status": "completed"}, mapping
    )
    assert isinstance(again, Event) and again.id == placed.id
    revoked = {
        **order,
        "status": "revoked",
        "meta": {"versionId": "3", "lastUpdated": "2026-03-02T11:00:00Z"},
    }
    (cancelled,) = convert_resource(revoked)
    assert isinstance(cancelled, Event) and (cancelled.type, iso(cancelled)) == (
        "order.cancelled",
        "2026-03-02T11:00:00+00:00",
    )


def report(status: str = "final", interpretation: str = "HH") -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": "R-1",
        "meta": {"versionId": "1"},
        "status": status,
        "basedOn": [{"reference": "ServiceRequest/O-1"}],
        "code": {"coding": [{"code": "2823-3"}]},
        "subject": {"reference": "Patient/P1"},
        "issued": "2026-03-02T11:00:00+00:00",
        "result": [{"reference": "#k"}],
        "contained": [
            {
                "resourceType": "Observation",
                "id": "k",
                "status": "final",
                "code": {"coding": [{"code": "2823-3"}]},
                "interpretation": [{"coding": [{"code": interpretation}]}],
            }
        ],
    }


def test_diagnostic_report_flags_and_order() -> None:
    (event,) = convert_resource(report())
    assert isinstance(event, Event)
    assert (event.id, event.refs) == (
        "DiagnosticReport/R-1/_history/1:result.reported:1",
        {"document": "R-1", "order": "O-1"},
    )
    assert (event.attrs["abnormal"], event.attrs["critical"], event.attrs["flags"]) == (
        True,
        True,
        ["HH"],
    )
    (normal,) = convert_resource(report(interpretation="N"))
    assert isinstance(normal, Event) and (normal.attrs["abnormal"], normal.attrs["critical"]) == (
        False,
        False,
    )
    (pending,) = convert_resource(report(status="registered"))
    assert isinstance(pending, Rejected) and pending.kind == NO_EVENT


def test_task_acknowledges_the_reports_order() -> None:
    memory = AdapterMemory()
    convert_resource(report(), None, memory)
    task = {
        "resourceType": "Task",
        "id": "T-1",
        "status": "completed",
        "intent": "order",
        "focus": {"reference": "DiagnosticReport/R-1"},
        "for": {"reference": "Patient/P1"},
        "lastModified": "2026-03-02T11:40:00Z",
    }
    (event,) = convert_resource(task, None, memory)
    assert isinstance(event, Event)
    assert (event.id, event.type, iso(event), event.refs) == (
        "Task/T-1:result.acknowledged:1",
        "result.acknowledged",
        "2026-03-02T11:40:00+00:00",
        {"order": "O-1", "document": "R-1"},
    )
    # Without the report seen before, the Task cannot name the order.
    (unknown,) = convert_resource(task, None, AdapterMemory())
    assert isinstance(unknown, Rejected) and "which order" in unknown.reason
    # In one Bundle, the report is found there.
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": task}, {"resource": report()}],
    }
    records = convert_json(orjson.dumps(bundle), memory=AdapterMemory())
    assert [r.type for r in records if isinstance(r, Event)] == [
        "result.acknowledged",
        "result.reported",
    ]


def test_document_reference_discharge_summary() -> None:
    doc = json.loads((SAMPLES / "fhir-r4" / "DocumentReference-example.json").read_bytes())
    doc["type"] = {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]}
    doc["context"]["related"].append({"reference": "Appointment/A-88"})
    (event,) = convert_resource(doc)
    assert isinstance(event, Event)
    assert event.attrs["kind"] == "discharge-summary"
    assert event.refs == {"document": "example", "encounter": "xcda", "appointment": "A-88"}
    doc["type"] = {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]}  # progress note
    (skipped,) = convert_resource(doc)
    assert isinstance(skipped, Rejected) and skipped.kind == NO_EVENT


def test_encounter_discharge_and_death() -> None:
    encounter = json.loads((SAMPLES / "fhir-r4" / "Encounter-example.json").read_bytes())
    encounter.update(
        status="finished",
        period={"start": "2026-03-01T08:00:00Z", "end": "2026-03-02T16:00:00Z"},
        hospitalization={"dischargeDisposition": {"coding": [{"code": "exp"}]}},
    )
    discharged, died = convert_resource(encounter)
    assert isinstance(discharged, Event) and isinstance(died, Event)
    # an id per version: a later version may correct the discharge time
    assert discharged.id.startswith("Encounter/example#")
    assert discharged.id.endswith(":encounter.discharged:1")
    assert (discharged.type, iso(discharged), discharged.refs) == (
        "encounter.discharged",
        "2026-03-02T16:00:00+00:00",
        {"encounter": "example"},
    )
    assert (died.type, died.patient, iso(died)) == (
        "patient.died",
        "example",
        "2026-03-02T16:00:00+00:00",
    )
    # a corrected discharge time in a later version is another event, not a conflict
    encounter["meta"] = {"versionId": "2"}
    encounter["period"]["end"] = "2026-03-02T17:30:00Z"
    again, _ = convert_resource(encounter)
    assert isinstance(again, Event) and again.id != discharged.id


def test_patient_deceased() -> None:
    patient = json.loads((SAMPLES / "fhir-r4" / "Patient-example.json").read_bytes())
    (died,) = convert_resource({**patient, "deceasedDateTime": "2026-03-02T04:10:00+00:00"})
    assert isinstance(died, Event) and (died.id, died.patient, iso(died)) == (
        "Patient/example:patient.died:1",
        "example",
        "2026-03-02T04:10:00+00:00",
    )
    dead = {**patient, "deceasedBoolean": True, "meta": {"lastUpdated": "2026-03-03T09:00:00Z"}}
    (bounded,) = convert_resource(dead)
    assert isinstance(bounded, Event) and bounded.attrs == {"death_time_known": False}
    (unknown,) = convert_resource({**patient, "deceasedBoolean": True})
    assert isinstance(unknown, Rejected) and "deceasedBoolean" in unknown.reason
    mapping = mapping_from_text(
        "fhir:\n  patient_identifier_system: urn:oid:1.2.36.146.595.217.0.1\n"
    )
    (by_mrn,) = convert_resource({**patient, "deceasedDateTime": "2026-03-02"}, mapping)
    assert isinstance(by_mrn, Event) and by_mrn.patient == "12345"
    assert iso(by_mrn) == "2026-03-02T00:00:00+00:00"  # a date: midnight in London


def test_patient_identifier_resolved_inside_a_bundle() -> None:
    patient = json.loads((SAMPLES / "fhir-r4" / "Patient-example.json").read_bytes())
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:p-1", "resource": patient},
            {
                "resource": {
                    **appointment("1", "booked", "2026-03-09T09:00:00Z"),
                    "participant": [{"actor": {"reference": "urn:uuid:p-1"}}],
                }
            },
        ],
    }
    mapping = mapping_from_text(
        "fhir:\n  patient_identifier_system: urn:oid:1.2.36.146.595.217.0.1\n"
    )
    records = convert_json(orjson.dumps(bundle), mapping)
    events = [r for r in records if isinstance(r, Event)]
    assert [(e.type, e.patient) for e in events] == [("appointment.booked", "12345")]


def test_unsupported_and_broken_resources() -> None:
    (observation,) = convert_resource({"resourceType": "Observation", "id": "o"})
    assert (
        isinstance(observation, Rejected)
        and observation.reason == "unsupported resource type Observation"
    )
    (weird,) = convert_resource({"resourceType": "Appointment", "id": "a", "status": 5})
    assert isinstance(weird, Rejected) and "status" in weird.reason
    (bad_time,) = convert_resource(appointment("1", "booked", "next tuesday"))
    assert isinstance(bad_time, Rejected) and "Appointment.start" in bad_time.reason
    (not_json,) = convert_json(b'{"resourceType": "Appoint')
    assert isinstance(not_json, Rejected) and "not valid JSON" in not_json.reason


@pytest.mark.parametrize("by", ["versionId", "lastUpdated"])
def test_an_older_version_arriving_late_is_not_a_reschedule(by: str) -> None:
    """Versions 1 (booked for the 9th) and 2 (moved to the 16th) in both orders: read in
    order, a booking and a reschedule; read newest first, version 1 is known to be older
    (by meta.versionId, or meta.lastUpdated when there is none) and makes no reschedule
    back to the 9th. Either way the appointment is remembered at the 16th."""

    def version(n: str, start: str) -> dict[str, Any]:
        res = appointment(n, "booked", start)
        if by == "lastUpdated":
            del res["meta"]["versionId"]
        return res

    v1 = version("1", "2026-03-09T09:00:00Z")
    v2 = version("2", "2026-03-16T09:00:00Z")
    in_order, newest_first = AdapterMemory(), AdapterMemory()
    forward = [r for r in run([v1, v2], in_order) if isinstance(r, Event)]
    backward = run([v2, v1], newest_first)
    assert [e.type for e in forward] == ["appointment.booked", "appointment.rescheduled"]
    assert forward[1].attrs["previous_start"] == "2026-03-09T09:00:00+00:00"
    events = [r for r in backward if isinstance(r, Event)]
    assert [e.type for e in events] == ["appointment.booked"]
    assert events[0].id == forward[0].id  # the same booking, so de-duplicated downstream
    assert "older than a version already read" in backward[-1].reason
    for memory in (in_order, newest_first):
        state = memory.appointments.get("A-88")
        assert state is not None and iso_of(state.start) == "2026-03-16T09:00:00+00:00"


def iso_of(epoch: float | None) -> str:
    from detectors.events import format_time

    assert epoch is not None
    return format_time(epoch)
