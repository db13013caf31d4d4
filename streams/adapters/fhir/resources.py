"""FHIR R4 resource type -> its handler."""

from __future__ import annotations

from collections.abc import Callable

from streams.adapters.fhir.clinical import (
    diagnostic_report,
    document_reference,
    encounter,
    patient,
    service_request,
    task,
)
from streams.adapters.fhir.context import ResourceContext
from streams.adapters.fhir.scheduling import appointment, communication

__all__ = ["HANDLERS"]

HANDLERS: dict[str, Callable[[ResourceContext], None]] = {
    "Appointment": appointment,
    "Communication": communication,
    "ServiceRequest": service_request,
    "DiagnosticReport": diagnostic_report,
    "Task": task,
    "DocumentReference": document_reference,
    "Encounter": encounter,
    "Patient": patient,
}
