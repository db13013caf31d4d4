"""Malformed HL7 v2 messages and FHIR lines for ``--malformed``: each is one input record
the adapters must reject (as ``invalid`` or ``unsupported``) without yielding any event.

Every id in them (control id, appointment, order, resource id) is ``bad_id`` (``X`` and
nine digits), shared with no event, so a malformed record can never touch what the
adapters remember about a real appointment or report. None of them is a record the
adapters would read as ``no-event``: each is plainly broken or of an unknown type.
"""

from __future__ import annotations

from random import Random
from typing import Any

import orjson

from streams.synthetic.formats.hl7_segments import message, msh, pid, segment
from streams.synthetic.formats.wire_time import epoch_of, fhir_time, hl7_time

__all__ = ["FHIR_KINDS", "HL7_KINDS", "malformed_fhir", "malformed_hl7"]

#: The kinds of broken HL7 v2 message, one chosen at random each time.
HL7_KINDS = (
    "no-control-id",
    "time-not-a-time",
    "unsupported-type",
    "no-appointment-id",
    "no-order-id",
    "result-without-obr",
    "discharge-without-visit",
    "header-only",
)

#: The kinds of broken FHIR NDJSON line.
FHIR_KINDS = (
    "truncated",
    "no-resource-type",
    "unsupported-type",
    "no-id",
    "unknown-status",
    "time-not-a-time",
    "not-an-object",
    "encounter-without-end",
    "task-without-order",
    "hl7-in-fhir-feed",
)


def malformed_hl7(rng: Random, example: dict[str, Any], bad_id: str) -> str:
    """One HL7 v2 message (segments ended by CR) the adapters reject, for the patient and
    time of the canonical event ``example``."""
    kind = rng.choice(HL7_KINDS)
    when = hl7_time(epoch_of(example["time"]))
    patient = pid(example.get("patient") or "P0000000")
    siu = "SIU^S12^SIU_S12"
    if kind == "no-control-id":
        return message(
            [msh("PAS", "TRUST", when, siu, ""), f"SCH|{bad_id}^PAS|{bad_id}^PAS", patient]
        )
    if kind == "time-not-a-time":
        garbage = rng.choice(("2026-03-02 09:30", "yesterday", "20261345120000", "0930"))
        return message(
            [msh("PAS", "TRUST", garbage, siu, bad_id), f"SCH|{bad_id}^PAS|{bad_id}^PAS", patient]
        )
    if kind == "unsupported-type":
        return message(
            [
                msh("PAS", "TRUST", when, "ADT^A01^ADT_A01", bad_id),
                f"EVN|A01|{when}",
                patient,
                segment("PV1", {1: "1", 2: "I", 19: bad_id, 44: when}),
            ]
        )
    if kind == "no-appointment-id":
        return message([msh("PAS", "TRUST", when, siu, bad_id), "SCH||||||||20|MIN", patient])
    if kind == "no-order-id":
        return message(
            [
                msh("EPR", "TRUST", when, "OML^O21^OML_O21", bad_id, receiver="LIMS"),
                patient,
                segment("ORC", {1: "NW", 9: when}),
                "OBR|1|||FBC^Full blood count^L",
            ]
        )
    if kind == "result-without-obr":
        return message(
            [
                msh("LIMS", "TRUST", when, "ORU^R01^ORU_R01", bad_id, receiver="EPR"),
                patient,
                "OBX|1|NM|K^Potassium^L||4.2|mmol/L|3.5-5.3|N|||F",
            ]
        )
    if kind == "discharge-without-visit":
        return message(
            [
                msh("PAS", "TRUST", when, "ADT^A03^ADT_A03", bad_id),
                f"EVN|A03|{when}",
                patient,
                segment("PV1", {1: "1", 2: "I", 36: "01", 45: when}),
            ]
        )
    return "MSH|^~\\&|PAS|TRUST\r"  # header-only: cut off before its type and control id


def malformed_fhir(rng: Random, example: dict[str, Any], bad_id: str) -> bytes:
    """One NDJSON line (without its newline) the FHIR adapter rejects, for the patient and
    time of the canonical event ``example``."""
    kind = rng.choice(FHIR_KINDS)
    when = fhir_time(epoch_of(example["time"]))
    patient = {"reference": f"Patient/{example.get('patient') or 'P0000000'}"}
    meta = {"versionId": "1", "lastUpdated": when}
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": bad_id,
        "meta": meta,
        "status": "booked",
        "start": when,
        "participant": [{"actor": patient, "status": "accepted"}],
    }
    bad: Any
    if kind == "truncated":
        text = orjson.dumps(appointment)
        return text[: rng.randint(1, len(text) - 2)]
    if kind == "no-resource-type":
        bad = {k: v for k, v in appointment.items() if k != "resourceType"}
    elif kind == "unsupported-type":
        bad = {"resourceType": "Observation", "id": bad_id, "meta": meta, "status": "final"}
    elif kind == "no-id":
        bad = {k: v for k, v in appointment.items() if k != "id"}
    elif kind == "unknown-status":
        bad = {**appointment, "status": rng.choice(("scheduled", "confirmed", "BOOKED"))}
    elif kind == "time-not-a-time":
        bad = {
            "resourceType": "ServiceRequest",
            "id": bad_id,
            "status": "active",
            "intent": "order",
            "subject": patient,
            "authoredOn": rng.choice(("02/03/2026 09:30", "yesterday", "2026-13-45T25:00:00Z")),
        }
    elif kind == "not-an-object":
        bad = f"Appointment/{bad_id}"
    elif kind == "encounter-without-end":
        bad = {
            "resourceType": "Encounter",
            "id": bad_id,
            "meta": meta,
            "status": "finished",
            "subject": patient,
            "period": {"start": when},
        }
    elif kind == "task-without-order":
        bad = {
            "resourceType": "Task",
            "id": bad_id,
            "meta": meta,
            "status": "completed",
            "intent": "order",
            "focus": {"reference": f"DiagnosticReport/{bad_id}"},
            "lastModified": when,
        }
    else:
        return f"MSH|^~\\&|LIMS|TRUST|EPR|TRUST|{hl7_time(epoch_of(example['time']))}||ORU^R01|{bad_id}|P|2.5.1".encode()
    return orjson.dumps(bad)
