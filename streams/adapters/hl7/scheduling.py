"""SIU scheduling messages and site notification segments -> appointment events."""

from __future__ import annotations

from typing import Any

from detectors.errors import InputError
from streams.adapters.hl7.context import MessageContext
from streams.adapters.memory import AppointmentState
from streams.adapters.times import format_time

__all__ = ["handle_notifications", "handle_siu"]

# The adapter's word for an appointment's state after each event, kept in memory.
_STATUS_OF = {
    "appointment.booked": "booked",
    "appointment.rescheduled": "booked",
    "appointment.attended": "attended",
    "appointment.missed": "missed",
    "appointment.cancelled": "cancelled",
}


def handle_siu(ctx: MessageContext, trigger: str) -> None:
    """S12 booked, S13 rescheduled, S14 modified, S15 cancelled, S26 did not attend."""
    appointment = ctx.value("appointment_id")
    if not appointment:
        raise InputError(f"no appointment id in {ctx.paths('appointment_id')}")
    time = ctx.required_time("message_time")
    start = ctx.time("appointment_start")
    refs = {"appointment": appointment}
    session = ctx.value("session")
    if session:
        refs["session"] = session
    event_type = _s14_event(ctx) if trigger == "S14" else _SIU_EVENTS[trigger]
    status = _STATUS_OF[event_type] if event_type else "booked"
    place = ctx.attrs_from(*_PLACE)
    before = ctx.memory.appointments.observe(
        appointment, ctx.control_id, start, status, place=tuple(place.items())
    )
    if event_type is None:
        # An S14 without a mapped status is a reschedule only if the start moved.
        remembered = before.start if before is not None else None
        moved = remembered is not None and start is not None and start != remembered
        if not (moved and ctx.settings.s14_start_change_is_reschedule):
            ctx.no_event(
                f"status {ctx.value('appointment_status') or '(none)'!r} and an unchanged start "
                "carry no care event (see hl7v2.s14_statuses)"
            )
            return
        event_type = "appointment.rescheduled"
    once = event_type in ("appointment.attended", "appointment.missed", "appointment.cancelled")
    if once and before is not None and before.status == _STATUS_OF[event_type]:
        ctx.no_event(f"appointment {appointment} was already {before.status}")
        return
    attrs = _appointment_attrs(ctx, event_type, start, before, place)
    ctx.emit(event_type, time, refs, attrs)


_SIU_EVENTS: dict[str, str] = {
    "S12": "appointment.booked",
    "S13": "appointment.rescheduled",
    "S15": "appointment.cancelled",
    "S26": "appointment.missed",
}


def _s14_event(ctx: MessageContext) -> str | None:
    status = ctx.value("appointment_status")
    return ctx.settings.s14_statuses.get(status.upper()) if status else None


#: The attributes that say where an appointment is.
_PLACE = ("clinic", "specialty", "site")


def _appointment_attrs(
    ctx: MessageContext,
    event_type: str,
    start: float | None,
    before: AppointmentState | None,
    place: dict[str, str],
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    remembered = before.start if before is not None else None
    shows_start = event_type in (
        "appointment.booked",
        "appointment.rescheduled",
        "appointment.missed",
    )
    if shows_start and start is not None:
        attrs["start"] = format_time(start)
    if event_type == "appointment.rescheduled":
        previous = ctx.time("previous_start")
        if previous is None:
            previous = remembered
        if previous is not None:
            attrs["previous_start"] = format_time(previous)
    if event_type == "appointment.cancelled":
        # The slot being cancelled is the previous start; the message usually says it.
        previous = start if start is not None else remembered
        if previous is not None:
            attrs["previous_start"] = format_time(previous)
    if event_type in ("appointment.rescheduled", "appointment.cancelled"):
        reason = ctx.value("appointment_reason")
        initiated_by = ctx.codes.initiator(reason)
        if initiated_by:
            attrs["initiated_by"] = initiated_by
        if reason:
            attrs["reason"] = reason
    if event_type == "appointment.cancelled":
        # An S15 seldom says where the appointment was: the booking it cancels does
        # (remembered), so its failures can be routed to the clinic and sliced by site.
        attrs.update({**place, **dict(before.place if before is not None else ())})
    else:
        attrs.update(place)
    return attrs


def handle_notifications(ctx: MessageContext) -> None:
    """``patient.notified`` for each segment named by a ``hl7v2.notifications`` rule."""
    for rule in ctx.settings.notifications:
        for index, segment in enumerate(ctx.message.all(rule.segment), start=1):
            scope = {rule.segment: [segment]}
            where = f"{rule.segment} {index}"
            try:
                time = _first_time(ctx, rule.time, scope)
                if time is None:
                    time = ctx.required_time("message_time")
                refs: dict[str, str] = {}
                appointment = _first(ctx, rule.appointment, scope)
                if appointment:
                    refs["appointment"] = appointment
                attrs: dict[str, Any] = {}
                code = _first(ctx, rule.channel, scope)
                if code:
                    channel = ctx.codes.channels.get(code.upper())
                    if channel:
                        attrs["channel"] = channel
                    attrs["channel_code"] = code
                ctx.emit("patient.notified", time, refs, attrs)
            except InputError as exc:
                ctx.reject(str(exc), "invalid", where)


def _first(ctx: MessageContext, paths: tuple[Any, ...], scope: Any) -> str:
    for path in paths:
        value = ctx.message.value(path, scope)
        if value:
            return value
    return ""


def _first_time(ctx: MessageContext, paths: tuple[Any, ...], scope: Any) -> float | None:
    for path in paths:
        value = ctx.message.value(path, scope)
        if value:
            return ctx.clock.hl7(value, path.text)
    return None
