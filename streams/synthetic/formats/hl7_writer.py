"""Canonical events -> the HL7 v2 message a hospital system would send for each.

One message per event, MSH-10 (the control id) being the event's id, so every message is
unique and the adapters' event ids (``<MSH-10>:<type>:<n>``) sort like the canonical ones.

| event | message |
|---|---|
| appointment.booked / rescheduled / cancelled | SIU^S12 / S13 / S15: SCH (ids, session in SCH-5, reason in SCH-6), TQ1 and AIS start, PV1 and AIL clinic |
| appointment.attended / missed | SIU^S14 with SCH-25 ``Arrived`` / SIU^S26 |
| patient.notified | ZLT^Z01 with a ZNT site segment (appointment, channel, time) |
| document.sent | MDM^T02: TXA-2 type, TXA-12 id, TXA-17 ``AU``; encounter PV1-19, appointment PV1-50 |
| order.placed / cancelled | OML^O21 (laboratory) or ORM^O01 (radiology), ORC-1 NW / CA, priority TQ1-9 or ORC-7.6 |
| result.reported | ORU^R01: ORC, OBR (OBR-22 result time, OBR-25 F), one OBX with its OBX-8 flag |
| encounter.discharged | ADT^A03 with PV1-19 visit number and PV1-45 discharge time |
| patient.died | ADT^A08 with PID-29 death time and PID-30 ``Y`` |
| session.capacity, result.acknowledged | none: HL7 v2 has no message for them and the adapters no site segment (see ``NOT_CARRIED``) |

Writes times in hospital time with offset (``wire_time``). Events must come in
event-time order: a message may need what earlier events said (an appointment's start,
an order's test).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.synthetic.formats.hl7_clinical import (
    Order,
    death_message,
    discharge_message,
    order_message,
    result_message,
)
from streams.synthetic.formats.hl7_scheduling import (
    Appointment,
    document_message,
    notice_message,
    siu_message,
)
from streams.synthetic.formats.wire_time import epoch_of

__all__ = ["NOT_CARRIED", "Hl7Writer"]

#: Canonical event types with no HL7 v2 message the adapters read.
NOT_CARRIED: frozenset[str] = frozenset({"session.capacity", "result.acknowledged"})

_RESCHEDULED_BY = {"hospital": "Moved by the hospital", "patient": "Moved at the patient's request"}


class Hl7Writer:
    """Turns canonical events, given in event-time order, into HL7 v2 message text. It
    keeps what the scheduling and order systems know (an appointment's start and
    session, an order's test), which later messages repeat."""

    def __init__(self) -> None:
        self._appointments: dict[str, Appointment] = {}
        self._orders: dict[str, Order] = {}
        self._handlers: dict[str, Callable[[dict[str, Any], int], str]] = {
            "appointment.booked": self._booked,
            "appointment.rescheduled": self._rescheduled,
            "appointment.cancelled": self._cancelled,
            "appointment.attended": lambda ev, t: self._siu(ev, t, "S14", "Arrived"),
            "appointment.missed": lambda ev, t: self._siu(ev, t, "S26", "Noshow"),
            "patient.notified": lambda ev, t: notice_message(ev, t, self._appointment_of(ev)),
            "document.sent": lambda ev, t: document_message(ev, t, self._appointment_of(ev)),
            "order.placed": self._placed,
            "order.cancelled": self._cancelled_order,
            "result.reported": lambda ev, t: result_message(
                ev, t, self._orders.get(ev["refs"]["order"])
            ),
            "encounter.discharged": discharge_message,
            "patient.died": death_message,
        }

    def message(self, event: dict[str, Any], t: int) -> str | None:
        """The message for ``event`` (a canonical event dict at ``t``, epoch s UTC), its
        segments ended by CR; ``None`` for a type in ``NOT_CARRIED``."""
        handler = self._handlers.get(event["type"])
        return handler(event, t) if handler is not None else None

    def _booked(self, ev: dict[str, Any], t: int) -> str:
        attrs = ev["attrs"]
        self._appointments[ev["refs"]["appointment"]] = Appointment(
            ev["patient"],
            epoch_of(attrs["start"]),
            ev["refs"]["session"],
            attrs["clinic"],
            attrs["site"],
            attrs["specialty"],
        )
        return self._siu(ev, t, "S12", "Booked")

    def _rescheduled(self, ev: dict[str, Any], t: int) -> str:
        appt = self._appointments[ev["refs"]["appointment"]]
        appt.start = epoch_of(ev["attrs"]["start"])
        appt.session = ev["refs"].get("session", appt.session)
        who = ev["attrs"].get("initiated_by", "")
        return self._siu(ev, t, "S13", "Booked", (who, _RESCHEDULED_BY.get(who, "")))

    def _cancelled(self, ev: dict[str, Any], t: int) -> str:
        attrs = ev["attrs"]
        who = attrs.get("initiated_by", "")
        if attrs.get("reason") == "patient deceased":
            who = "deceased"
        return self._siu(ev, t, "S15", "Cancelled", (who, attrs.get("reason", "")))

    def _siu(
        self,
        ev: dict[str, Any],
        t: int,
        trigger: str,
        status: str,
        reason: tuple[str, str] | None = None,
    ) -> str:
        appt = self._appointments[ev["refs"]["appointment"]]
        return siu_message(ev, t, appt, trigger, status, reason)

    def _appointment_of(self, ev: dict[str, Any]) -> Appointment | None:
        return self._appointments.get(ev["refs"].get("appointment", ""))

    def _placed(self, ev: dict[str, Any], t: int) -> str:
        attrs = ev["attrs"]
        order = Order(attrs["test"], attrs["priority"], attrs["site"], t)
        self._orders[ev["refs"]["order"]] = order
        return order_message(ev, t, order, "NW")

    def _cancelled_order(self, ev: dict[str, Any], t: int) -> str:
        return order_message(ev, t, self._orders[ev["refs"]["order"]], "CA")
