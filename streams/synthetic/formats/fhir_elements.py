"""Small FHIR R4 building blocks shared by the resource builders: codings, references
and the code systems the synthetic hospital uses."""

from __future__ import annotations

from typing import Any

from streams.synthetic.formats.vocabulary import LOCAL_SYSTEM

__all__ = [
    "HOSPITAL_NUMBER",
    "INTERPRETATION_SYSTEM",
    "MODE_SYSTEM",
    "REASON_SYSTEM",
    "SECTION_SYSTEM",
    "SPECIALTY_SYSTEM",
    "TEST_SYSTEM",
    "coding",
    "ref",
]

#: The hospital's local test codes (``fhir.test_code_systems`` in the generator mapping).
TEST_SYSTEM = f"{LOCAL_SYSTEM}/CodeSystem/test"
SPECIALTY_SYSTEM = f"{LOCAL_SYSTEM}/CodeSystem/specialty"
HOSPITAL_NUMBER = f"{LOCAL_SYSTEM}/Id/hospital-number"
REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
MODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
SECTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0074"


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A CodeableConcept with one coding."""
    one = {"system": system, "code": code}
    if display:
        one["display"] = display
    return {"coding": [one]}


def ref(resource_type: str, rid: str) -> dict[str, str]:
    """A literal Reference ``Type/id``."""
    return {"reference": f"{resource_type}/{rid}"}
