"""Canonical events -> the FHIR R4 resource (version) a hospital's FHIR server would
publish for each.

One resource version per event, with ``meta.versionId`` counting the versions of that
resource and ``meta.lastUpdated`` the event time:

| event | resource |
|---|---|
| appointment.booked | Appointment, new, ``booked``, ``created`` = booking time, start/end, Patient and Location participants |
| appointment.rescheduled | the same Appointment, next version, ``booked`` with the new start; ``cancelationReason`` ``prov`` / ``pat`` says who moved it |
| appointment.cancelled / attended / missed | next version: ``cancelled`` (with ``cancelationReason``) / ``arrived`` / ``noshow`` |
| patient.notified | Communication ``completed``, about the Appointment, to the Patient, ``medium`` SMSWRIT / EMAILWRIT / ONLINEWRIT |
| document.sent | DocumentReference ``current``: type LOINC 18842-5 / 11488-4 or local APL, context encounter or related Appointment |
| order.placed / cancelled | ServiceRequest ``active`` (priority, local test code) / next version ``revoked`` |
| result.reported | DiagnosticReport ``final``, basedOn the ServiceRequest, with a contained Observation carrying the interpretation code (N, H, L, HH, LL, A, AA) |
| result.acknowledged | Task ``completed``, focus the DiagnosticReport, basedOn the ServiceRequest |
| encounter.discharged | Encounter ``finished`` with ``period.end`` = discharge time |
| patient.died | Patient with ``deceasedDateTime`` (a second notice: the next version) |
| session.capacity | none: the adapters read no Schedule or Slot (see ``NOT_CARRIED``) |

Times are written in hospital time with offset (``wire_time``). Events must come in
event-time order: a version builds on the state earlier events left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.synthetic.formats.fhir_clinical import (
    encounter_body,
    patient_body,
    report_body,
    request_body,
    task_body,
)
from streams.synthetic.formats.fhir_scheduling import (
    appointment_body,
    communication_body,
    document_body,
    move,
    set_reason,
)
from streams.synthetic.formats.wire_time import epoch_of, fhir_time

__all__ = ["NOT_CARRIED", "FhirWriter"]

#: Canonical event types with no FHIR resource the adapters read.
NOT_CARRIED: frozenset[str] = frozenset({"session.capacity"})

_Body = Callable[[dict[str, Any], int], tuple[str, str, dict[str, Any]]]


class FhirWriter:
    """Turns canonical events, given in event-time order, into FHIR R4 resources. It
    keeps each resource's version number and the current state of Appointments and
    ServiceRequests, which later versions repeat."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._appointments: dict[str, dict[str, Any]] = {}
        self._orders: dict[str, dict[str, Any]] = {}
        self._reports: dict[str, str] = {}  # order id -> DiagnosticReport id
        self._bodies: dict[str, _Body] = {
            "appointment.booked": self._booked,
            "appointment.rescheduled": self._rescheduled,
            "appointment.cancelled": self._cancelled,
            "appointment.attended": lambda ev, t: self._status(ev, "arrived"),
            "appointment.missed": lambda ev, t: self._status(ev, "noshow"),
            "patient.notified": lambda ev, t: (
                "Communication",
                f"N{ev['id'][1:]}",
                communication_body(ev, t),
            ),
            "document.sent": lambda ev, t: (
                "DocumentReference",
                ev["refs"]["document"],
                document_body(ev, t),
            ),
            "order.placed": self._placed,
            "order.cancelled": self._revoked,
            "result.reported": self._report,
            "result.acknowledged": self._acknowledged,
            "encounter.discharged": lambda ev, t: (
                "Encounter",
                ev["refs"]["encounter"],
                encounter_body(ev, t),
            ),
            "patient.died": lambda ev, t: ("Patient", ev["patient"], patient_body(ev, t)),
        }

    def resource(self, event: dict[str, Any], t: int) -> dict[str, Any] | None:
        """The resource version for ``event`` (a canonical event dict at ``t``, epoch s
        UTC), with ``meta.versionId`` and ``meta.lastUpdated`` = ``t``; ``None`` for a
        type in ``NOT_CARRIED``. Serialise it before the next call: later versions of
        the same resource share its nested elements."""
        make = self._bodies.get(event["type"])
        if make is None:
            return None
        resource_type, rid, body = make(event, t)
        key = f"{resource_type}/{rid}"
        version = self._versions.get(key, 0) + 1
        self._versions[key] = version
        meta = {"versionId": str(version), "lastUpdated": fhir_time(t)}
        return {"resourceType": resource_type, "id": rid, "meta": meta, **body}

    # -- Appointment versions -------------------------------------------------------------

    def _booked(self, ev: dict[str, Any], t: int) -> tuple[str, str, dict[str, Any]]:
        aid = ev["refs"]["appointment"]
        self._appointments[aid] = appointment_body(ev, t)
        return "Appointment", aid, self._appointments[aid]

    def _rescheduled(self, ev: dict[str, Any], t: int) -> tuple[str, str, dict[str, Any]]:
        aid = ev["refs"]["appointment"]
        body = self._appointments[aid]
        move(body, epoch_of(ev["attrs"]["start"]))
        set_reason(body, ev["attrs"].get("initiated_by"), None)
        return "Appointment", aid, body

    def _cancelled(self, ev: dict[str, Any], t: int) -> tuple[str, str, dict[str, Any]]:
        attrs = ev["attrs"]
        deceased = attrs.get("reason") == "patient deceased"
        aid, body = ev["refs"]["appointment"], self._appointments[ev["refs"]["appointment"]]
        body["status"] = "cancelled"
        set_reason(body, "deceased" if deceased else attrs.get("initiated_by"), attrs.get("reason"))
        return "Appointment", aid, body

    def _status(self, ev: dict[str, Any], status: str) -> tuple[str, str, dict[str, Any]]:
        aid = ev["refs"]["appointment"]
        self._appointments[aid]["status"] = status
        return "Appointment", aid, self._appointments[aid]

    # -- orders, reports and their review -------------------------------------------------

    def _placed(self, ev: dict[str, Any], t: int) -> tuple[str, str, dict[str, Any]]:
        oid = ev["refs"]["order"]
        self._orders[oid] = request_body(ev, t)
        return "ServiceRequest", oid, self._orders[oid]

    def _revoked(self, ev: dict[str, Any], t: int) -> tuple[str, str, dict[str, Any]]:
        oid = ev["refs"]["order"]
        self._orders[oid]["status"] = "revoked"
        return "ServiceRequest", oid, self._orders[oid]

    def _report(self, ev: dict[str, Any], t: int) -> tuple[str, str, dict[str, Any]]:
        oid = ev["refs"]["order"]
        report = ev["refs"].get("document") or report_id(oid)
        self._reports[oid] = report
        return "DiagnosticReport", report, report_body(ev, t)

    def _acknowledged(self, ev: dict[str, Any], t: int) -> tuple[str, str, dict[str, Any]]:
        oid = ev["refs"]["order"]
        report = self._reports.get(oid) or report_id(oid)
        return "Task", f"K{ev['id'][1:]}", task_body(ev, t, report)


def report_id(order: str) -> str:
    """The id of the DiagnosticReport answering ``order`` when the result event names no
    report document (laboratory results): ``R`` and the order's digits."""
    return f"R{order[1:]}"
