"""FHIR R4 resources -> care events, one handler per resource type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detectors.errors import InputError
from streams.adapters._fhir_context import (
    ResourceContext,
    as_list,
    patient_identifier,
    reference_id,
)
from streams.adapters.memory import AppointmentState
from streams.adapters.times import format_time

__all__ = ["HANDLERS"]

# FHIR Appointment.status -> the adapter's word for the state (kept in memory).
_APPOINTMENT_STATE = {
    "proposed": "proposed",
    "pending": "proposed",
    "waitlist": "proposed",
    "booked": "booked",
    "arrived": "attended",
    "checked-in": "attended",
    "fulfilled": "attended",
    "noshow": "missed",
    "cancelled": "cancelled",
    "entered-in-error": "error",
}
_NOT_LIVE = (None, "proposed", "cancelled", "missed", "error")
_ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")


def appointment(ctx: ResourceContext) -> None:
    """booked -> appointment.booked, or .rescheduled when a remembered start moved;
    arrived/checked-in/fulfilled -> .attended; noshow -> .missed; cancelled -> .cancelled."""
    res = ctx.resource
    appointment_id = ctx.require_id()
    status = ctx.text("status")
    state = _APPOINTMENT_STATE.get(status or "")
    if state is None:
        raise InputError(f"unknown Appointment.status {status!r}")
    start = ctx.time_of("start")
    before = ctx.memory.appointments.observe(appointment_id, ctx.version, start, state)
    participants = [p.get("actor") for p in as_list(res.get("participant")) if isinstance(p, dict)]
    patient = ctx.patient(*participants)
    refs = {"appointment": appointment_id}
    attrs = _appointment_attrs(ctx, participants)
    if state in ("proposed", "error"):
        ctx.no_event(f"status {status!r} carries no care event")
        return
    if state == "booked":
        if before is None or before.status in _NOT_LIVE:
            if start is not None:
                attrs["start"] = format_time(start)
            time = _booking_time(ctx)
            ctx.emit("appointment.booked", time, patient, refs, attrs)
        elif before.start is not None and start is not None and start != before.start:
            attrs["start"] = format_time(start)
            attrs["previous_start"] = format_time(before.start)
            _initiator(ctx, attrs)
            time = ctx.required_time("meta.lastUpdated")
            ctx.emit("appointment.rescheduled", time, patient, refs, attrs, per_version=True)
        else:
            ctx.no_event("updated without a change of start")
        return
    if before is not None and before.status == state:
        ctx.no_event(f"appointment was already {state}")
        return
    time = ctx.required_time("meta.lastUpdated")
    if state == "cancelled":
        cancel: dict[str, Any] = {}
        previous = start if start is not None else _start_of(before)
        if previous is not None:
            cancel["previous_start"] = format_time(previous)
        _initiator(ctx, cancel)
        ctx.emit("appointment.cancelled", time, patient, refs, cancel)
    elif state == "missed":
        ctx.emit("appointment.missed", time, patient, refs, {})
    else:
        ctx.emit("appointment.attended", time, patient, refs, attrs)


def _start_of(state: AppointmentState | None) -> float | None:
    return state.start if state is not None else None


def _booking_time(ctx: ResourceContext) -> float:
    # "created" says when the appointment was made; it is often a bare date, and then
    # the first version's lastUpdated is the more precise time of the booking.
    created = ctx.text("created")
    if created and ("T" in created or ctx.time_of("meta.lastUpdated") is None):
        return ctx.clock.iso(created, "Appointment.created")
    return ctx.required_time("meta.lastUpdated", "created")


def _appointment_attrs(ctx: ResourceContext, participants: list[Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for actor in participants:
        location = reference_id(actor, "Location", ctx.index)
        if location:
            attrs["clinic"] = location
            break
    specialty = ctx.code(ctx.resource.get("specialty"))
    if specialty:
        attrs["specialty"] = specialty
    return attrs


def _initiator(ctx: ResourceContext, attrs: dict[str, Any]) -> None:
    reasons = ctx.all_codes(ctx.resource.get("cancelationReason"))
    initiated_by = None
    for code in reasons:
        initiated_by = ctx.codes.initiated_by.get(code.upper())
        if initiated_by:
            break
    initiated_by = initiated_by or ctx.codes.initiated_by_default
    if initiated_by:
        attrs["initiated_by"] = initiated_by
    if reasons:
        attrs["reason"] = reasons[0]


def communication(ctx: ResourceContext) -> None:
    """A completed Communication to the patient -> patient.notified (about/basedOn an
    Appointment -> refs.appointment; medium -> channel)."""
    res = ctx.resource
    status = ctx.text("status")
    if status not in ctx.settings.communication_statuses:
        ctx.no_event(f"status {status!r} is not a notification that went out")
        return
    recipients = [r for r in as_list(res.get("recipient")) if isinstance(r, dict)]
    to_patient = [r for r in recipients if _is_patient_side(r, ctx)]
    if recipients and not to_patient and ctx.settings.communication_requires_patient_recipient:
        ctx.no_event("no recipient is the patient (or a related person)")
        return
    time = ctx.required_time("sent", "received", "meta.lastUpdated")
    refs: dict[str, str] = {}
    for ref in [*as_list(res.get("about")), *as_list(res.get("basedOn"))]:
        found = reference_id(ref, "Appointment", ctx.index)
        if found:
            refs["appointment"] = found
            break
    attrs: dict[str, Any] = {}
    for code in ctx.all_codes(res.get("medium")):
        channel = ctx.codes.channels.get(code.upper())
        if channel:
            attrs["channel"] = channel
            attrs["channel_code"] = code
            break
    patient = ctx.patient(res.get("subject"), *to_patient)
    ctx.emit("patient.notified", time, patient, refs, attrs)


def _is_patient_side(ref: dict[str, Any], ctx: ResourceContext) -> bool:
    return bool(
        reference_id(ref, "Patient", ctx.index) or reference_id(ref, "RelatedPerson", ctx.index)
    )


def service_request(ctx: ResourceContext) -> None:
    """active/on-hold/completed -> order.placed; revoked/entered-in-error -> order.cancelled."""
    res = ctx.resource
    order = ctx.require_id()
    status = ctx.text("status")
    intent = ctx.text("intent")
    if intent is not None and intent not in _ORDER_INTENTS:
        ctx.no_event(f"intent {intent!r} is not an order")
        return
    patient = ctx.patient(res.get("subject"))
    refs = {"order": order}
    if status in ("revoked", "entered-in-error"):
        time = ctx.required_time("meta.lastUpdated", "authoredOn")
        ctx.emit("order.cancelled", time, patient, refs, {"status": status})
        return
    if status not in ("active", "on-hold", "completed"):
        ctx.no_event(f"status {status!r} is not a placed order")
        return
    time = ctx.required_time("authoredOn", "meta.lastUpdated")
    attrs: dict[str, Any] = {}
    test = ctx.code(res.get("code"))
    if test:
        attrs["test"] = test
    priority = ctx.text("priority")
    attrs["priority"] = ctx.codes.priority_of(priority)
    if priority:
        attrs["priority_code"] = priority
    ctx.emit("order.placed", time, patient, refs, attrs)


def diagnostic_report(ctx: ResourceContext) -> None:
    """A reported DiagnosticReport -> result.reported per basedOn order (refs.document =
    the report); abnormal/critical from the interpretation of its Observations."""
    res = ctx.resource
    report = ctx.require_id()
    status = ctx.text("status")
    orders = [
        o
        for o in (reference_id(r, "ServiceRequest", ctx.index) for r in as_list(res.get("basedOn")))
        if o
    ]
    for order in orders:
        ctx.memory.report_orders.remember(report, order)
    patient = ctx.patient(res.get("subject"))
    if status == "cancelled" and orders:
        time = ctx.required_time("meta.lastUpdated", "issued")
        for order in orders:
            ctx.emit("order.cancelled", time, patient, {"order": order}, {"status": status})
        return
    if status not in ctx.settings.result_statuses:
        ctx.no_event(f"status {status!r} is not a reported result")
        return
    time = ctx.required_time("issued", "meta.lastUpdated")
    flags = _interpretations(ctx)
    abnormal, critical = ctx.codes.flags(flags)
    attrs: dict[str, Any] = {"abnormal": abnormal, "critical": critical, "status": status}
    test = ctx.code(res.get("code"))
    if test:
        attrs["test"] = test
    if flags:
        attrs["flags"] = sorted(set(flags))
    for order in orders or [""]:
        refs = {"document": report}
        if order:
            refs["order"] = order
        ctx.emit("result.reported", time, patient, refs, dict(attrs), per_version=True)


def _interpretations(ctx: ResourceContext) -> list[str]:
    """Interpretation codes of the report's result Observations, contained or in the
    same Bundle. (R4 DiagnosticReport has no interpretation of its own; a report whose
    Observations are not at hand reads as not abnormal.)"""
    res = ctx.resource
    contained = {
        f"#{c.get('id')}": c
        for c in as_list(res.get("contained"))
        if isinstance(c, dict) and c.get("id")
    }
    flags: list[str] = []
    for ref in as_list(res.get("result")):
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str):
            continue
        observation = contained.get(target) or (ctx.index or {}).get(target)
        if isinstance(observation, dict) and observation.get("resourceType") == "Observation":
            flags.extend(ctx.all_codes(observation.get("interpretation")))
    return flags


def task(ctx: ResourceContext) -> None:
    """A completed Task whose focus is a DiagnosticReport -> result.acknowledged for the
    report's order (from the Bundle, the report memory, or Task.basedOn)."""
    res = ctx.resource
    status = ctx.text("status")
    report = reference_id(res.get("focus"), "DiagnosticReport", ctx.index)
    if report is None:
        ctx.no_event("focus is not a DiagnosticReport (not a result acknowledgement)")
        return
    if status not in ctx.settings.task_statuses:
        ctx.no_event(f"status {status!r} is not an acknowledgement")
        return
    order = _order_of_report(ctx, report)
    if order is None:
        for ref in as_list(res.get("basedOn")):
            order = reference_id(ref, "ServiceRequest", ctx.index)
            if order:
                break
    if order is None:
        raise InputError(
            f"cannot tell which order DiagnosticReport/{report} answers: no basedOn in "
            "the Bundle, in earlier reports or on the Task"
        )
    time = ctx.required_time("lastModified", "executionPeriod.end", "meta.lastUpdated")
    patient = ctx.patient(res.get("for"))
    ctx.emit("result.acknowledged", time, patient, {"order": order, "document": report}, {})


def _order_of_report(ctx: ResourceContext, report: str) -> str | None:
    found = ctx.memory.report_orders.order_of(report)
    if found or ctx.index is None:
        return found
    resource = ctx.index.get(f"DiagnosticReport/{report}")
    for ref in as_list(_object(resource).get("basedOn")):
        order = reference_id(ref, "ServiceRequest", ctx.index)
        if order:
            return order
    return None


def document_reference(ctx: ResourceContext) -> None:
    """A current DocumentReference -> document.sent (kind from the type codes), and
    patient.notified when the type is a patient notice."""
    res = ctx.resource
    status = ctx.text("status")
    if status not in ctx.settings.document_statuses:
        ctx.no_event(f"status {status!r} is not a document that went out")
        return
    codes = ctx.all_codes(res.get("type"))
    kind = next(
        (
            ctx.codes.document_kinds[c.upper()]
            for c in codes
            if c.upper() in ctx.codes.document_kinds
        ),
        None,
    )
    channel = next(
        (
            ctx.codes.notice_documents[c.upper()]
            for c in codes
            if c.upper() in ctx.codes.notice_documents
        ),
        None,
    )
    if kind is None and channel is None and not ctx.codes.emit_unmapped_documents:
        ctx.no_event(f"type {', '.join(codes) or '(none)'} is not in codes.document_kinds")
        return
    time = ctx.required_time("date", "meta.lastUpdated")
    refs: dict[str, str] = {}
    if ctx.id:
        refs["document"] = ctx.id
    context = _object(res.get("context"))
    for ref in as_list(context.get("encounter")):
        found = reference_id(ref, "Encounter", ctx.index)
        if found:
            refs["encounter"] = found
            break
    for ref in as_list(context.get("related")):
        found = reference_id(ref, "Appointment", ctx.index)
        if found:
            refs["appointment"] = found
            break
    attrs: dict[str, Any] = {}
    if kind:
        attrs["kind"] = kind
    if codes:
        attrs["document_type"] = codes[0]
    doc_status = ctx.text("docStatus")
    if doc_status:
        attrs["doc_status"] = doc_status
    patient = ctx.patient(res.get("subject"))
    ctx.emit("document.sent", time, patient, refs, attrs)
    if channel:
        ctx.emit("patient.notified", time, patient, dict(refs), {"channel": channel})


def encounter(ctx: ResourceContext) -> None:
    """A finished Encounter -> encounter.discharged at period.end, and patient.died
    when the discharge disposition says so."""
    res = ctx.resource
    encounter_id = ctx.require_id()
    status = ctx.text("status")
    if status != "finished":
        ctx.no_event(f"status {status!r} is not a discharge")
        return
    time = ctx.time_of("period.end")
    if time is None:
        raise InputError("finished Encounter has no period.end (the discharge time)")
    patient = ctx.patient(res.get("subject"))
    attrs: dict[str, Any] = {}
    provider = reference_id(res.get("serviceProvider"), "Organization", ctx.index)
    if provider:
        attrs["site"] = provider
    specialty = ctx.code(res.get("serviceType"))
    if specialty:
        attrs["specialty"] = specialty
    stay = _object(res.get("hospitalization"))
    dispositions = ctx.all_codes(stay.get("dischargeDisposition"))
    if dispositions:
        attrs["disposition"] = dispositions[0]
    ctx.emit("encounter.discharged", time, patient, {"encounter": encounter_id}, attrs)
    if any(code.upper() in ctx.codes.died_dispositions for code in dispositions):
        ctx.emit("patient.died", time, patient, {}, {})


def patient(ctx: ResourceContext) -> None:
    """deceasedDateTime -> patient.died; deceasedBoolean true -> patient.died at
    meta.lastUpdated (the death is certain, its time is only bounded)."""
    res = ctx.resource
    system = ctx.settings.patient_identifier_system
    patient_id = (patient_identifier(res, system) if system else None) or ctx.require_id()
    if isinstance(res.get("deceasedDateTime"), str):
        time = ctx.required_time("deceasedDateTime")
        ctx.emit("patient.died", time, patient_id, {}, {})
    elif res.get("deceasedBoolean") is True:
        updated = ctx.time_of("meta.lastUpdated")
        if updated is None:
            raise InputError(
                "deceasedBoolean is true but there is no time of death "
                "(deceasedDateTime) nor meta.lastUpdated"
            )
        ctx.emit("patient.died", updated, patient_id, {}, {"death_time_known": False})
    else:
        ctx.no_event("not deceased: no care event")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


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
