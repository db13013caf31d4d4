"""HL7 v2 messages about orders, results, discharges and deaths: OML^O21 / ORM^O01,
ORU^R01, ADT^A03 and ADT^A08."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.synthetic.formats.hl7_scheduling import ward
from streams.synthetic.formats.hl7_segments import escape, message, msh, pid, segment
from streams.synthetic.formats.vocabulary import PRIORITY_HL7, TESTS, length_of_stay
from streams.synthetic.formats.wire_time import hl7_time

__all__ = [
    "Order",
    "death_message",
    "discharge_message",
    "order_message",
    "result_message",
]


@dataclass(frozen=True, slots=True)
class Order:
    """What the order-communications system knows of an order; ``placed`` in epoch s UTC."""

    test: str
    priority: str
    site: str
    placed: int


def order_message(event: dict[str, Any], t: int, order: Order, control: str) -> str:
    """The order message at ``t`` (epoch s UTC) with order control ``control`` (NW new,
    CA cancel): OML^O21 to the laboratory with the priority in TQ1-9, or ORM^O01 to
    radiology with it in ORC-7.6 and OBR-27.6; the order id in ORC-2 and OBR-2, the
    local test code in OBR-4, the time in ORC-9."""
    oid = event["refs"]["order"]
    test = TESTS[order.test]
    when = hl7_time(t)
    priority = PRIORITY_HL7[order.priority]
    orc = {1: control, 2: f"{oid}^EPR", 9: when}
    if control == "CA":
        orc[5] = "CA"
    obr = {1: "1", 2: f"{oid}^EPR", 4: f"{escape(order.test)}^{escape(test.name)}^L", 6: when}
    if test.imaging:
        kind, receiver = "ORM^O01^ORM_O01", "RIS"
        orc[7] = f"^^^^^{priority}"
        timing = [segment("OBR", {**obr, 27: f"^^^^^{priority}"})]
    else:
        kind, receiver = "OML^O21^OML_O21", "LIMS"
        timing = [segment("TQ1", {1: "1", 9: priority}), segment("OBR", obr)]
    return message(
        [
            msh("EPR", order.site.upper(), when, kind, event["id"], receiver=receiver),
            pid(event["patient"]),
            segment("PV1", {1: "1", 2: "O", 3: f"^^^{order.site}"}),
            segment("ORC", orc),
            *timing,
        ]
    )


def result_message(event: dict[str, Any], t: int, order: Order | None) -> str:
    """ORU^R01 for a result reported at ``t`` (epoch s UTC): OBR-22 the report time,
    OBR-25 ``F``; one OBX whose OBX-8 flag says normal (N), abnormal (H, L, A) or
    critical (HH, LL, AA)."""
    oid = event["refs"]["order"]
    attrs = event["attrs"]
    test = TESTS[attrs["test"]]
    flag, value = test.reading(attrs["abnormal"], attrs["critical"])
    when = hl7_time(t)
    placed = hl7_time(order.placed) if order else when
    site = attrs.get("site") or (order.site if order else "")
    sender = "RIS" if test.imaging else "LIMS"
    filler = f"F{oid[1:]}^{sender}"
    obr = {
        1: "1",
        2: f"{oid}^EPR",
        3: filler,
        4: f"{escape(attrs['test'])}^{escape(test.name)}^L",
        7: placed,
        22: when,
        24: test.department,
        25: "F",
    }
    obx = {
        1: "1",
        2: test.value_type,
        3: f"{test.analyte}^{escape(test.analyte_name)}^L",
        5: escape(value),
        6: escape(test.units),
        7: test.reference_range,
        8: flag,
        11: "F",
        14: placed,
    }
    return message(
        [
            msh(sender, site.upper(), when, "ORU^R01^ORU_R01", event["id"], receiver="EPR"),
            pid(event["patient"]),
            segment("PV1", {1: "1", 2: "O", 3: f"^^^{site}"}),
            segment("ORC", {1: "RE", 2: f"{oid}^EPR", 3: filler}),
            segment("OBR", obr),
            segment("OBX", obx),
        ]
    )


def discharge_message(event: dict[str, Any], t: int) -> str:
    """ADT^A03 for a discharge at ``t`` (epoch s UTC): PV1-19 the visit number (the
    encounter), PV1-36 ``01`` (home), PV1-44 admitted, PV1-45 discharged."""
    encounter = event["refs"]["encounter"]
    attrs = event["attrs"]
    when = hl7_time(t)
    pv1 = {
        1: "1",
        2: "I",
        3: f"{ward(attrs['specialty'])}^^^{attrs['site']}",
        10: escape(attrs["specialty"]),
        19: encounter,
        36: "01",
        44: hl7_time(t - length_of_stay(encounter)),
        45: when,
    }
    return message(
        [
            msh("PAS", attrs["site"].upper(), when, "ADT^A03^ADT_A03", event["id"]),
            f"EVN|A03|{when}",
            pid(event["patient"]),
            segment("PV1", pv1),
        ]
    )


def death_message(event: dict[str, Any], t: int) -> str:
    """ADT^A08 (update patient information) for a death at ``t`` (epoch s UTC): PID-29
    the date and time of death, PID-30 ``Y``."""
    when = hl7_time(t)
    return message(
        [
            msh("PAS", "TRUST", when, "ADT^A08^ADT_A01", event["id"]),
            f"EVN|A08|{when}",
            pid(event["patient"], died_at=when),
            "PV1|1|N",
        ]
    )
