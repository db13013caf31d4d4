"""HL7 v2 messages about outpatient appointments: SIU scheduling messages, the site's
ZLT^Z01 notice message and MDM^T02 documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.synthetic.formats.hl7_segments import escape, message, msh, pid, segment
from streams.synthetic.formats.vocabulary import (
    CHANNEL_CODES,
    DOCUMENT_TYPES,
    INITIATOR_CODES,
    SLOT_MINUTES,
)
from streams.synthetic.formats.wire_time import hl7_time

__all__ = ["Appointment", "document_message", "notice_message", "siu_message", "ward"]


@dataclass(slots=True)
class Appointment:
    """What the scheduling system knows of an appointment: ``start`` in epoch s UTC."""

    patient: str
    start: int
    session: str
    clinic: str
    site: str
    specialty: str


def siu_message(
    event: dict[str, Any],
    t: int,
    appt: Appointment,
    trigger: str,
    status: str,
    reason: tuple[str, str] | None = None,
) -> str:
    """SIU^``trigger`` for ``event`` at ``t`` (epoch s UTC): SCH with the appointment id
    (SCH-1, SCH-2), the session (SCH-5), ``reason`` = (who asked, text) in SCH-6 and
    ``status`` in SCH-25; the start in TQ1-7, AIS-4 and SCH-11.4; the clinic in PV1-3
    and AIL-3 (clinic^^^site), the specialty in PV1-10."""
    aid = event["refs"]["appointment"]
    start, end = hl7_time(appt.start), hl7_time(appt.start + SLOT_MINUTES * 60)
    where = f"{appt.clinic}^^^{appt.site}"
    minutes = str(SLOT_MINUTES)
    sch = {
        1: f"{aid}^PAS",
        2: f"{aid}^PAS",
        5: appt.session,
        7: "ROUTINE^Routine appointment^HL70276",
        8: "NORMAL^Normal^HL70277",
        9: minutes,
        10: "MIN",
        11: f"^^{minutes}^{start}^{end}",
        25: status,
    }
    if reason is not None and reason[0] in INITIATOR_CODES:
        sch[6] = f"{INITIATOR_CODES[reason[0]][0]}^{escape(reason[1])}^L"
    specialty = escape(appt.specialty)
    kind = f"SIU^{trigger}^SIU_{trigger}"
    ais = {1: "1", 2: "A", 3: f"{specialty}^{specialty}^L", 4: start, 7: minutes, 8: "MIN"}
    return message(
        [
            msh("PAS", appt.site.upper(), hl7_time(t), kind, event["id"]),
            segment("SCH", sch),
            segment("TQ1", {1: "1", 7: start, 8: end}),
            pid(appt.patient),
            segment("PV1", {1: "1", 2: "O", 3: where, 10: specialty}),
            "RGS|1|A",
            segment("AIS", {**ais, 10: status}),
            segment("AIL", {1: "1", 2: "A", 3: f"{where}^^C", 6: start, 12: status}),
        ]
    )


def notice_message(event: dict[str, Any], t: int, appt: Appointment | None) -> str:
    """ZLT^Z01, the messaging service's report of a text, email or portal message sent
    at ``t`` (epoch s UTC): one ZNT segment (appointment, channel code, time sent)."""
    code = CHANNEL_CODES[event["attrs"].get("channel", "letter")][0]
    when = hl7_time(t)
    facility = appt.site.upper() if appt else "TRUST"
    return message(
        [
            msh("COMMS", facility, when, "ZLT^Z01^ZLT_Z01", event["id"]),
            pid(event["patient"]),
            segment("ZNT", {1: event["refs"].get("appointment", ""), 2: code, 3: when}),
        ]
    )


def document_message(event: dict[str, Any], t: int, appt: Appointment | None) -> str:
    """MDM^T02 for a document sent at ``t`` (epoch s UTC): TXA-2 type, TXA-12 id, TXA-17
    ``AU`` (authenticated); the inpatient visit in PV1-19, or the outpatient appointment
    in PV1-50."""
    refs, attrs = event["refs"], event["attrs"]
    kind = DOCUMENT_TYPES[attrs["kind"]]
    when = hl7_time(t)
    site = attrs.get("site") or (appt.site if appt else "")
    specialty = attrs.get("specialty") or (appt.specialty if appt else "")
    if "encounter" in refs:
        visit = {2: "I", 3: f"{ward(specialty)}^^^{site}", 19: refs["encounter"]}
    else:
        clinic = attrs.get("clinic") or (appt.clinic if appt else "")
        visit = {2: "O", 3: f"{clinic}^^^{site}", 50: refs.get("appointment", "")}
    txa = {
        1: "1",
        2: kind.hl7,
        3: "TX",
        4: when,
        6: when,
        12: refs["document"],
        17: "AU",
        19: "AV",
    }
    obx = {1: "1", 2: "TX", 3: f"{kind.hl7}^{kind.display}^L", 5: kind.display, 11: "F"}
    return message(
        [
            msh("EDMS", site.upper() or "TRUST", when, "MDM^T02^MDM_T02", event["id"]),
            f"EVN|T02|{when}",
            pid(event["patient"]),
            segment("PV1", {1: "1", **visit, 10: escape(specialty)}),
            segment("TXA", txa),
            segment("OBX", obx),
        ]
    )


def ward(specialty: str) -> str:
    """A ward code for an inpatient specialty (``general-medicine`` -> ``GENE-WARD``)."""
    return f"{specialty[:4].upper()}-WARD"
