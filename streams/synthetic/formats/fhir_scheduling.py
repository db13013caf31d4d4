"""FHIR R4 content about outpatient appointments: the Appointment's elements, the
Communication of a notice and the DocumentReference of a letter.

Each function returns a resource body without ``resourceType``, ``id`` and ``meta``,
which ``FhirWriter`` adds with the version. Times are epoch seconds UTC, written in
hospital time with offset.
"""

from __future__ import annotations

from typing import Any

from streams.synthetic.formats.fhir_elements import (
    MODE_SYSTEM,
    REASON_SYSTEM,
    SPECIALTY_SYSTEM,
    coding,
    ref,
)
from streams.synthetic.formats.vocabulary import (
    CHANNEL_CODES,
    DOCUMENT_TYPES,
    INITIATOR_CODES,
    SLOT_MINUTES,
)
from streams.synthetic.formats.wire_time import epoch_of, fhir_time

__all__ = ["appointment_body", "communication_body", "document_body", "move", "set_reason"]


def appointment_body(event: dict[str, Any], t: int) -> dict[str, Any]:
    """A ``booked`` Appointment made at ``t``: ``created``, start and end, the specialty,
    the Patient and the clinic's Location as participants."""
    attrs = event["attrs"]
    clinic = {**ref("Location", attrs["clinic"]), "display": f"{attrs['clinic']} ({attrs['site']})"}
    body: dict[str, Any] = {
        "status": "booked",
        "serviceType": [coding(SPECIALTY_SYSTEM, attrs["specialty"])],
        "specialty": [coding(SPECIALTY_SYSTEM, attrs["specialty"])],
        "appointmentType": coding(
            "http://terminology.hl7.org/CodeSystem/v2-0276", "ROUTINE", "Routine appointment"
        ),
        "created": fhir_time(t),
        "participant": [
            {
                "actor": ref("Patient", event["patient"]),
                "required": "required",
                "status": "accepted",
            },
            {"actor": clinic, "required": "required", "status": "accepted"},
        ],
    }
    move(body, epoch_of(attrs["start"]))
    return body


def move(body: dict[str, Any], start: int) -> None:
    """Set the Appointment's start (epoch s UTC), end and duration."""
    body["start"] = fhir_time(start)
    body["end"] = fhir_time(start + SLOT_MINUTES * 60)
    body["minutesDuration"] = SLOT_MINUTES


def set_reason(body: dict[str, Any], who: str | None, text: str | None) -> None:
    """Set the Appointment's cancelationReason to the code of who asked for the change
    (``prov``, ``pat``, ``pat-dec``), or clear it for an unknown ``who``."""
    if who not in INITIATOR_CODES:
        body.pop("cancelationReason", None)
        return
    reason = coding(REASON_SYSTEM, INITIATOR_CODES[who][1])
    if text:
        reason["text"] = text
    body["cancelationReason"] = reason


def communication_body(event: dict[str, Any], t: int) -> dict[str, Any]:
    """A ``completed`` Communication sent to the patient at ``t`` about an appointment;
    ``medium`` is the channel's v3 ParticipationMode code."""
    patient = ref("Patient", event["patient"])
    channel = event["attrs"].get("channel", "letter")
    return {
        "status": "completed",
        "category": [
            coding("http://terminology.hl7.org/CodeSystem/communication-category", "notification")
        ],
        "medium": [coding(MODE_SYSTEM, CHANNEL_CODES[channel][1])],
        "subject": patient,
        "about": [ref("Appointment", event["refs"]["appointment"])],
        "sent": fhir_time(t),
        "recipient": [patient],
        "payload": [{"contentString": "A message about your appointment."}],
    }


def document_body(event: dict[str, Any], t: int) -> dict[str, Any]:
    """A ``current`` DocumentReference dated ``t``, typed by LOINC (discharge summary,
    consult note) or the local APL code (appointment letter), with the encounter or the
    appointment (``context.related``) it belongs to."""
    refs = event["refs"]
    kind = DOCUMENT_TYPES[event["attrs"]["kind"]]
    context: dict[str, Any] = {}
    if "encounter" in refs:
        context["encounter"] = [ref("Encounter", refs["encounter"])]
    if "appointment" in refs:
        context["related"] = [ref("Appointment", refs["appointment"])]
    attachment = {
        "contentType": "application/pdf",
        "url": f"Binary/{refs['document']}",
        "title": kind.display,
    }
    return {
        "status": "current",
        "docStatus": "final",
        "type": coding(kind.system, kind.code, kind.display),
        "subject": ref("Patient", event["patient"]),
        "date": fhir_time(t),
        "content": [{"attachment": attachment}],
        "context": context,
    }
