"""FHIR R4 content about orders, results, acknowledgements, discharges and deaths:
ServiceRequest, DiagnosticReport (with a contained Observation), Task, Encounter and
Patient.

Each function returns a resource body without ``resourceType``, ``id`` and ``meta``,
which ``FhirWriter`` adds with the version. Times are epoch seconds UTC, written in
hospital time with offset.
"""

from __future__ import annotations

from typing import Any

from streams.synthetic.formats.fhir_elements import (
    HOSPITAL_NUMBER,
    INTERPRETATION_SYSTEM,
    SECTION_SYSTEM,
    SPECIALTY_SYSTEM,
    TEST_SYSTEM,
    coding,
    ref,
)
from streams.synthetic.formats.vocabulary import (
    LOCAL_SYSTEM,
    TESTS,
    length_of_stay,
    patient_details,
)
from streams.synthetic.formats.wire_time import fhir_time

__all__ = ["encounter_body", "patient_body", "report_body", "request_body", "task_body"]


def request_body(event: dict[str, Any], t: int) -> dict[str, Any]:
    """An ``active`` ServiceRequest authored at ``t``: the local test code, the priority
    (request-priority: stat, urgent, routine) and the performing department."""
    attrs = event["attrs"]
    test = TESTS[attrs["test"]]
    department = f"{'radiology' if test.imaging else 'laboratory'}-{attrs['site']}"
    return {
        "identifier": [{"system": f"{LOCAL_SYSTEM}/Id/order", "value": event["refs"]["order"]}],
        "status": "active",
        "intent": "order",
        "category": [coding(SECTION_SYSTEM, test.department)],
        "priority": attrs["priority"],
        "code": coding(TEST_SYSTEM, attrs["test"], test.name),
        "subject": ref("Patient", event["patient"]),
        "authoredOn": fhir_time(t),
        "performer": [ref("Organization", department)],
    }


def report_body(event: dict[str, Any], t: int) -> dict[str, Any]:
    """A ``final`` DiagnosticReport issued at ``t``, basedOn the order's ServiceRequest,
    with one contained Observation whose interpretation code says normal (N), abnormal
    (H, L, A) or critical (HH, LL, AA)."""
    attrs = event["attrs"]
    test = TESTS[attrs["test"]]
    flag, value = test.reading(attrs["abnormal"], attrs["critical"])
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "result",
        "status": "final",
        "code": coding(TEST_SYSTEM, test.analyte, test.analyte_name),
        "subject": ref("Patient", event["patient"]),
        "issued": fhir_time(t),
        "interpretation": [coding(INTERPRETATION_SYSTEM, flag)],
    }
    if test.value_type == "NM":
        observation["valueQuantity"] = {"value": float(value), "unit": test.units}
        observation["referenceRange"] = [{"text": test.reference_range}]
    else:
        observation["valueString"] = value
    return {
        "contained": [observation],
        "basedOn": [ref("ServiceRequest", event["refs"]["order"])],
        "status": "final",
        "category": [coding(SECTION_SYSTEM, test.department)],
        "code": coding(TEST_SYSTEM, attrs["test"], test.name),
        "subject": ref("Patient", event["patient"]),
        "issued": fhir_time(t),
        "result": [{"reference": "#result"}],
    }


def task_body(event: dict[str, Any], t: int, report: str) -> dict[str, Any]:
    """A ``completed`` review Task at ``t`` whose focus is DiagnosticReport ``report``,
    basedOn the order's ServiceRequest (which the adapters fall back on)."""
    return {
        "basedOn": [ref("ServiceRequest", event["refs"]["order"])],
        "status": "completed",
        "intent": "order",
        "code": coding(f"{LOCAL_SYSTEM}/CodeSystem/task", "review-result", "Review result"),
        "focus": ref("DiagnosticReport", report),
        "for": ref("Patient", event["patient"]),
        "authoredOn": fhir_time(t),
        "lastModified": fhir_time(t),
        "executionPeriod": {"end": fhir_time(t)},
    }


def encounter_body(event: dict[str, Any], t: int) -> dict[str, Any]:
    """A ``finished`` inpatient Encounter discharged at ``t`` (``period.end``), home."""
    attrs = event["attrs"]
    admitted = t - length_of_stay(event["refs"]["encounter"])
    return {
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "IMP",
            "display": "inpatient encounter",
        },
        "serviceType": coding(SPECIALTY_SYSTEM, attrs["specialty"]),
        "subject": ref("Patient", event["patient"]),
        "period": {"start": fhir_time(admitted), "end": fhir_time(t)},
        "hospitalization": {
            "dischargeDisposition": coding(
                "http://terminology.hl7.org/CodeSystem/discharge-disposition", "home"
            )
        },
        "serviceProvider": ref("Organization", attrs["site"]),
    }


def patient_body(event: dict[str, Any], t: int) -> dict[str, Any]:
    """The Patient with ``deceasedDateTime`` ``t``."""
    patient = event["patient"]
    who = patient_details(patient)
    return {
        "identifier": [{"system": HOSPITAL_NUMBER, "value": patient}],
        "name": [{"use": "official", "family": who.family, "given": [who.given]}],
        "gender": "female" if who.sex == "F" else "male",
        "birthDate": who.birth_date.isoformat(),
        "deceasedDateTime": fhir_time(t),
    }
