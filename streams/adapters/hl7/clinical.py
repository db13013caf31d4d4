"""Orders (ORM, OML), results (ORU), documents (MDM) and ADT -> care events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detectors.errors import InputError
from streams.adapters.hl7.context import MessageContext, Scope
from streams.adapters.hl7.text import Hl7Message
from streams.adapters.records import INVALID

__all__ = [
    "handle_arrival",
    "handle_discharge",
    "handle_document",
    "handle_orders",
    "handle_patient_update",
    "handle_results",
]


def order_groups(message: Hl7Message) -> list[Scope]:
    """Split a message into order groups: each ORC starts one, and an OBR joins the
    group of the ORC before it unless that group already has an OBR. TQ1 belongs to its
    group; OBX only when after the group's OBR (earlier ones describe the patient)."""
    groups: list[Scope] = []
    current: Scope | None = None
    for segment in message.segments:
        sid = segment.id
        if sid == "ORC":
            current = {"ORC": [segment]}
            groups.append(current)
        elif sid == "OBR":
            if current is None or "OBR" in current:
                current = {"OBR": [segment]}
                groups.append(current)
            else:
                current["OBR"] = [segment]
        elif current is not None and (sid == "TQ1" or (sid == "OBX" and "OBR" in current)):
            current.setdefault(sid, []).append(segment)
    return groups


def _each_group(
    ctx: MessageContext,
    groups: list[Scope],
    label: str,
    event: Callable[[MessageContext, Scope, str], None],
) -> None:
    """Run ``event`` on every order group; a bad group is rejected on its own (named
    ``label n`` when the message has several), the others still become events."""
    for index, scope in enumerate(groups, start=1):
        where = f"{label} {index}" if len(groups) > 1 else ""
        try:
            event(ctx, scope, where)
        except InputError as exc:
            ctx.reject(str(exc), INVALID, where)


def handle_orders(ctx: MessageContext, trigger: str) -> None:
    """ORM^O01 / OML^O21: one ``order.placed`` (or ``order.cancelled``) per order group."""
    groups = order_groups(ctx.message)
    if not groups:
        raise InputError("no ORC or OBR segment: no order in this message")
    _each_group(ctx, groups, "order", _order_event)


def _order_event(ctx: MessageContext, scope: Scope, where: str) -> None:
    order = ctx.value("order_id", scope)
    if not order:
        raise InputError(f"no order id in {ctx.paths('order_id')}")
    control = ctx.value("order_control", scope).upper()
    time = ctx.required_time("order_time", scope)
    refs = {"order": order}
    if control in ctx.settings.order_cancelled:
        ctx.emit("order.cancelled", time, refs, {})
        return
    if control and control not in ctx.settings.order_placed:
        ctx.no_event(f"order control {control!r} is neither placed nor cancelled", where)
        return
    attrs: dict[str, Any] = {}
    test = ctx.value("test", scope)
    if test:
        attrs["test"] = test
    code = ctx.value("priority", scope)
    attrs["priority"] = ctx.codes.priority_of(code)
    if code:
        attrs["priority_code"] = code
    attrs.update(ctx.attrs_from("site", "specialty", scope=scope))
    ctx.emit("order.placed", time, refs, attrs)


def handle_results(ctx: MessageContext, trigger: str) -> None:
    """ORU^R01: one ``result.reported`` per OBR (``order.cancelled`` for status X)."""
    groups = [g for g in order_groups(ctx.message) if "OBR" in g]
    if not groups:
        raise InputError("no OBR segment: no result in this message")
    _each_group(ctx, groups, "OBR", _result_event)


def _result_event(ctx: MessageContext, scope: Scope, where: str) -> None:
    order = ctx.value("order_id", scope)
    if not order:
        raise InputError(f"no order id in {ctx.paths('order_id')}")
    status = ctx.value("result_status", scope).upper()
    time = ctx.required_time("result_time", scope)
    refs = {"order": order}
    if status in ctx.settings.result_cancelled:
        ctx.emit("order.cancelled", time, refs, {"result_status": status})
        return
    if status and status not in ctx.settings.result_reported:
        ctx.no_event(f"result status {status!r} is not a reported result", where)
        return
    flags: list[str] = []
    for obx in scope.get("OBX", []):
        flags.extend(ctx.values("result_flags", {"OBX": [obx]}))
    abnormal, critical = ctx.codes.flags(flags)
    attrs: dict[str, Any] = {"abnormal": abnormal, "critical": critical}
    test = ctx.value("test", scope)
    if test:
        attrs["test"] = test
    if flags:
        attrs["flags"] = sorted(set(flags))
    if status:
        attrs["result_status"] = status
    ctx.emit("result.reported", time, refs, attrs)


def handle_document(ctx: MessageContext, trigger: str) -> None:
    """MDM^T02: ``document.sent`` (kind by TXA-2), and ``patient.notified`` when the
    document type is a patient notice."""
    doc_type = ctx.value("document_type")
    kind = ctx.codes.document_kinds.get(doc_type.upper()) if doc_type else None
    channel = ctx.codes.notice_documents.get(doc_type.upper()) if doc_type else None
    status = ctx.value("document_status").upper()
    if status and status not in ctx.settings.document_statuses:
        ctx.no_event(f"document status {status!r} ({ctx.paths('document_status')}) is not sent yet")
        return
    if kind is None and channel is None and not ctx.codes.emit_unmapped_documents:
        ctx.no_event(f"document type {doc_type or '(none)'!r} is not in codes.document_kinds")
        return
    time = ctx.required_time("document_time")
    refs: dict[str, str] = {}
    for ref, name in (
        ("document", "document_id"),
        ("encounter", "encounter_id"),
        ("appointment", "document_appointment"),
    ):
        value = ctx.value(name)
        if value:
            refs[ref] = value
    attrs: dict[str, Any] = {"document_type": doc_type} if doc_type else {}
    if kind:
        attrs["kind"] = kind
    recipient = ctx.codes.document_recipients.get(doc_type.upper()) if doc_type else None
    if recipient is None and channel:
        recipient = "patient"  # a notice to the patient
    if recipient:
        attrs["recipient"] = recipient
    ctx.emit("document.sent", time, refs, attrs)
    if channel:
        ctx.emit(
            "patient.notified", time, dict(refs), {"channel": channel, "document_type": doc_type}
        )


def handle_discharge(ctx: MessageContext, trigger: str) -> None:
    """ADT^A03: ``encounter.discharged``, plus ``patient.died`` when the disposition or
    the death indicator says so."""
    time = ctx.required_time("discharge_time")
    encounter = ctx.value("encounter_id")
    if encounter:
        attrs = ctx.attrs_from("site", "specialty")
        disposition = ctx.value("discharge_disposition")
        if disposition:
            attrs["disposition"] = disposition
        ctx.emit("encounter.discharged", time, {"encounter": encounter}, attrs)
    else:
        ctx.reject(f"no encounter id in {ctx.paths('encounter_id')}", INVALID)
    disposition = ctx.value("discharge_disposition").upper()
    if disposition in ctx.codes.died_dispositions or _died(ctx):
        death = ctx.time("death_time")
        ctx.emit("patient.died", death if death is not None else time, {}, {})


def handle_patient_update(ctx: MessageContext, trigger: str) -> None:
    """ADT^A08: ``patient.died`` when PID-30 says Y (time PID-29, else when recorded)."""
    if not _died(ctx):
        ctx.no_event("no death indicated (PID-30) carries no care event")
        return
    death = ctx.time("death_time")
    if death is not None:
        ctx.emit("patient.died", death, {}, {})
    else:
        # The death is certain, its time is not: the message time is the latest it
        # can have been, better than losing contact-after-death for this patient.
        recorded = ctx.required_time("message_time")
        ctx.emit("patient.died", recorded, {}, {"death_time_known": False})


def handle_arrival(ctx: MessageContext, trigger: str) -> None:
    """ADT^A04/A10: ``encounter.arrived`` by default, ``appointment.attended`` when the
    mapping says so (``hl7v2.a04_event``)."""
    time = ctx.required_time("arrival_time")
    attrs = ctx.attrs_from("clinic", "specialty", "site")
    if ctx.settings.a04_event == "appointment.attended":
        appointment = ctx.value("visit_appointment_id")
        if not appointment:
            raise InputError(
                f"mapped to appointment.attended but no appointment id in "
                f"{ctx.paths('visit_appointment_id')}"
            )
        ctx.memory.appointments.observe(appointment, ctx.control_id, None, "attended")
        ctx.emit("appointment.attended", time, {"appointment": appointment}, attrs)
        return
    refs: dict[str, str] = {}
    encounter = ctx.value("encounter_id")
    if encounter:
        refs["encounter"] = encounter
    ctx.emit("encounter.arrived", time, refs, attrs)


def _died(ctx: MessageContext) -> bool:
    return ctx.value("death_indicator").upper() == "Y"
