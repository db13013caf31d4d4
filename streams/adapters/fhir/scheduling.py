"""FHIR R4 Appointment and Communication -> appointment and notification events."""

from __future__ import annotations

from typing import Any

from detectors.errors import InputError
from streams.adapters.fhir.context import (
    ResourceContext,
    as_list,
    reference_id,
)
from streams.adapters.memory import AppointmentState, Rank
from streams.adapters.times import format_time

__all__ = ["appointment", "communication"]

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
    rank = _rank(ctx)
    if ctx.memory.appointments.is_older(appointment_id, rank):
        # compared with the newer state it would read as a change back (a reschedule to
        # the old start): an older version arriving late tells nothing new
        ctx.no_event(f"version {ctx.version} is older than a version already read")
        return
    before = ctx.memory.appointments.observe(appointment_id, ctx.version, start, state, rank=rank)
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


def _rank(ctx: ResourceContext) -> Rank | None:
    """Where this version stands among the Appointment's versions: its numeric
    ``meta.versionId``, else its ``meta.lastUpdated``, else unknown."""
    version = ctx.meta.get("versionId")
    if isinstance(version, int) and not isinstance(version, bool):
        return (0, float(version))
    if isinstance(version, str) and version.strip().isdigit():
        return (0, float(int(version.strip())))
    updated = ctx.time_of("meta.lastUpdated")
    return None if updated is None else (1, updated)


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
