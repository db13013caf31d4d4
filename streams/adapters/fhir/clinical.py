"""FHIR R4 orders, results, acknowledgements, documents, encounters and deaths."""

from __future__ import annotations

from typing import Any

from detectors.errors import InputError
from streams.adapters.fhir.context import (
    ResourceContext,
    as_list,
    patient_identifier,
    reference_id,
)

__all__ = [
    "diagnostic_report",
    "document_reference",
    "encounter",
    "patient",
    "service_request",
    "task",
]

_ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")


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
    recipient = next(
        (
            ctx.codes.document_recipients[c.upper()]
            for c in codes
            if c.upper() in ctx.codes.document_recipients
        ),
        "patient" if channel else None,  # a notice to the patient
    )
    if recipient:
        attrs["recipient"] = recipient
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
    # per version: a later version may correct the discharge time (the same discharge
    # keyed in again); the encounter still opens one opportunity, from its earliest time
    ctx.emit(
        "encounter.discharged", time, patient, {"encounter": encounter_id}, attrs, per_version=True
    )
    if any(code.upper() in ctx.codes.died_dispositions for code in dispositions):
        ctx.emit("patient.died", time, patient, {}, {}, per_version=True)


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
