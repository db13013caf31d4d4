"""``contact-after-death`` over columns: every booking, notice or document for a patient
with an event time strictly after their earliest recorded death is one violation."""

from __future__ import annotations

import numpy as np

from detectors.builtin.contact_after_death import is_patient_contact
from detectors.contract import CARRIED_ATTRS, human_time
from detectors.records import Outcome, failure_id
from tests.oracle.clock import Clock
from tests.oracle.frame import ColumnPlan, EventFrame

__all__ = ["CONTACT_TYPES", "contact_after_death", "needs"]

NAME = "contact-after-death"
#: The events that count as contact with a patient.
CONTACT_TYPES = ("appointment.booked", "patient.notified", "document.sent")
_WORDS = {
    "appointment.booked": "an appointment was booked",
    "patient.notified": "a notice was sent",
    "document.sent": "a document was sent",
}


def needs() -> ColumnPlan:
    """The frame columns this detector reads."""
    return {"patient": frozenset({"patient.died", *CONTACT_TYPES})}


def contact_after_death(frame: EventFrame, clock: Clock) -> list[Outcome]:
    """The violations the watermark has reached (contacts at or before it)."""
    table = frame.table
    died = table[(table["type"] == "patient.died").to_numpy() & table["patient"].notna()]
    if died.empty:
        return []
    # the earliest death of each patient, equal times going to the smaller id
    first = died.sort_values(["time", "id"]).drop_duplicates("patient")
    first = first[["patient", "time", "id"]].rename(columns={"time": "t_d", "id": "death"})
    contacts = table[table["type"].isin(CONTACT_TYPES) & (table["time"] <= clock.watermark)]
    with_patient = [
        is_patient_contact(ev.type, ev.attrs) for ev in (frame.events[r] for r in contacts.index)
    ]
    contacts = contacts[np.array(with_patient, dtype=bool)]
    joined = contacts[["patient", "time"]].reset_index(names="row").merge(first, on="patient")
    joined = joined[joined["time"] > joined["t_d"]]
    detected = clock.detected_at(joined["time"].to_numpy())
    out = []
    for row, t_d, death, detected_at in zip(
        joined["row"].tolist(),
        joined["t_d"].tolist(),
        joined["death"].tolist(),
        detected.tolist(),
        strict=True,
    ):
        ev = frame.events[row]
        attrs = {k: ev.attrs[k] for k in CARRIED_ATTRS if k in ev.attrs}
        attrs["contact"] = ev.type
        if ev.type == "document.sent" and "kind" in ev.attrs:
            attrs["kind"] = ev.attrs["kind"]
        words = _WORDS.get(ev.type, ev.type).capitalize()
        out.append(
            Outcome(
                failure_id=failure_id(NAME, ev.patient or "", ev.id),
                detector=NAME,
                outcome="violation",
                key=ev.patient or "",
                patient=ev.patient,
                refs=dict(ev.refs),
                opened_at=ev.time,
                due_at=None,
                closed_at=None,
                detected_at=detected_at,
                evidence=[death, ev.id],
                evidence_events=[("patient.died", t_d), (ev.type, ev.time)],
                attrs=attrs,
                summary=(
                    f"{words} at {human_time(ev.time)} for a patient recorded as dead since "
                    f"{human_time(t_d)}."
                ),
            )
        )
    return out
