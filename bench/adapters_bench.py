"""Throughput of the input adapters on one core, on synthetic messages built in memory.

    python bench/adapters_bench.py [--hl7 20000] [--fhir 40000] [--rounds 3]

Prints HL7 v2 messages/s and FHIR resources/s, each two ways: one record at a time
(``convert_message`` / ``convert_json``, the Kafka path) and a whole stream
(``iter_records`` over a file's bytes). Targets: >= 10,000 HL7 messages/s and >= 20,000
FHIR resources/s. All values are synthetic (no patient data); the best of ``--rounds``
runs is reported, as the least disturbed by other work on the machine.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from streams.adapters import AdapterMemory, Rejected, convert_json, convert_message, iter_records

_BASE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _ts(offset_minutes: int) -> str:
    # Half the synthetic times carry an offset, half are local (site timezone).
    stamp = (_BASE + timedelta(minutes=offset_minutes)).strftime("%Y%m%d%H%M%S")
    return stamp + "+0000" if offset_minutes % 2 else stamp


# Segments a real feed carries that the adapters do not read, to give messages a
# realistic size (a PAS message is typically 1-3 KB).
_FILLER = [
    "PD1|||NORTH SURGERY^^G81001|G1234567^JONES^ANN^^^DR\r",
    "NK1|1|SMITH^SAM|SPO^Spouse|1 HIGH STREET^^LEEDS^^LS1 1AA^GBR|07700900123\r",
    "AL1|1|DA|PENICILLIN^Penicillin^L|MO|Rash\r",
    "DG1|1||I10^Essential hypertension^I10|Hypertension|20250101|W\r",
    "NTE|1||Patient prefers morning appointments; interpreter not required.\r",
    "OBX|1|TX|NOTE^Free text^L||Transport booked: no. Mobility: independent.||||||F\r",
    "ROL|1|AD|PP^Primary care provider^HL70443|G1234567^JONES^ANN^^^DR\r",
    "IN1|1|NHS^National Health Service|NHS|NHS England\r",
    "ZPI|1|LETTER^POST|EN|N|Y\r",
]
_PID = (
    "PID|1||{pat}^^^NHS^NH~{mrn}^^^NORTH^MR||SMITH^JO^A^^MS||19700101|F|||"
    "1 HIGH STREET^FLAT 2^LEEDS^WEST YORKSHIRE^LS1 1AA^GBR^H||07700900123^PRN^CP~"
    "jo.smith@example.org^NET^Internet|||M^Married|C^Christian|||||A^White British\r"
)


def _hl7_messages(count: int, rng: random.Random, filler: int) -> list[bytes]:
    extra = "".join(_FILLER[i % len(_FILLER)] for i in range(filler))
    templates = [
        "MSH|^~\\&|PAS|NORTH|CW|NORTH|{t0}||SIU^S12^SIU_S12|{cid}|P|2.5\r"
        "SCH|{appt}|{appt}F||||NEW^New booking|CONS|NORMAL|30|min|^^30^{t1}^{t2}"
        "||||||||||||||Booked\r"
        "TQ1|1||||||{t1}|{t2}\r"
        "{pid}"
        "PV1|1|O|CARD1^^^NORTH||||||||CARD\r"
        "RGS|1\r"
        "AIS|1||CONSULT^Consultation^L|{t1}|||30|min||Booked\r"
        "AIL|1||CARD1^^^NORTH\r",
        "MSH|^~\\&|PAS|NORTH|CW|NORTH|{t0}||SIU^S13^SIU_S13|{cid}|P|2.5\r"
        "SCH|{appt}|{appt}F|||||HOSP^Clinic cancelled|CONS|NORMAL|30|min||||||||||||||Booked\r"
        "TQ1|1||||||{t2}|{t3}\r"
        "{pid}"
        "RGS|1\r"
        "AIL|1||CARD1^^^NORTH\r",
        "MSH|^~\\&|ORDERCOMMS|NORTH|CW|NORTH|{t0}||ORM^O01^ORM_O01|{cid}|P|2.5\r"
        "{pid}"
        "PV1|1|O|WARD7^^^NORTH\r"
        "ORC|NW|{order}^ORDERCOMMS||||||^^^^^S|{t0}\r"
        "OBR|1|{order}^ORDERCOMMS||CRP^C-reactive protein^L|||{t0}\r",
        "MSH|^~\\&|LIMS|NORTH|CW|NORTH|{t3}||ORU^R01^ORU_R01|{cid}|P|2.5\r"
        "{pid}"
        "ORC|RE|{order}^ORDERCOMMS|{order}L^LIMS\r"
        "OBR|1|{order}^ORDERCOMMS|{order}L^LIMS|UE^Urea and electrolytes^L|||{t1}"
        "|||||||||||||||{t3}|||F\r"
        "OBX|1|NM|NA^Sodium^L||139|mmol/L|133-146|N|||F\r"
        "OBX|2|NM|K^Potassium^L||{k}|mmol/L|3.5-5.3|{flag}|||F\r"
        "OBX|3|NM|UREA^Urea^L||5.1|mmol/L|2.5-7.8|N|||F\r",
        "MSH|^~\\&|EPR|NORTH|CW|NORTH|{t3}||MDM^T02^MDM_T02|{cid}|P|2.5\r"
        "EVN|T02|{t3}\r"
        "{pid}"
        "PV1|1|I|WARD7^^^NORTH|||||||MED||||||||{enc}\r"
        "TXA|1|DS|TX|{t2}||{t3}||||||{doc}||||||AU\r",
        "MSH|^~\\&|PAS|NORTH|CW|NORTH|{t3}||ADT^A03^ADT_A03|{cid}|P|2.5\r"
        "EVN|A03|{t3}\r"
        "{pid}"
        "PV1|1|I|WARD7^^^NORTH||||||||MED||||||||{enc}|||||||||||||||||01||||||||{t2}|{t3}\r",
    ]
    out = []
    for n in range(count):
        start = rng.randrange(0, 60 * 24 * 90)
        values = {
            "cid": f"C{n:09d}",
            "appt": f"A{rng.randrange(10**7):07d}",
            "order": f"O{rng.randrange(10**7):07d}",
            "enc": f"E{rng.randrange(10**7):07d}",
            "doc": f"D{n:08d}",
            "pat": f"{9000000000 + rng.randrange(10**8)}",
            "mrn": f"M{rng.randrange(10**6):06d}",
            "t0": _ts(start),
            "t1": _ts(start + 7 * 24 * 60),
            "t2": _ts(start + 14 * 24 * 60),
            "t3": _ts(start + 15),
            "k": rng.choice(["4.1", "6.8"]),
            "flag": rng.choice(["N", "H", "HH"]),
        }
        values["pid"] = (_PID + extra).format(**values)
        out.append(templates[n % len(templates)].format(**values).encode())
    return out


def _fhir_resources(count: int, rng: random.Random) -> list[bytes]:
    def iso(minutes: int) -> str:
        return (_BASE + timedelta(minutes=minutes)).isoformat()

    out = []
    for n in range(count):
        start = rng.randrange(0, 60 * 24 * 90)
        patient = {"reference": f"Patient/P{rng.randrange(10**7):07d}"}
        kind = n % 6
        meta = {"versionId": str(1 + n % 3), "lastUpdated": iso(start)}
        if kind == 0:
            resource: dict[str, object] = {
                "resourceType": "Appointment",
                "id": f"A{n // 6 % 5000:07d}",
                "meta": meta,
                "status": "booked",
                "start": iso(start + 7 * 24 * 60 + (n % 3) * 60),
                "created": iso(start),
                "participant": [{"actor": patient}, {"actor": {"reference": "Location/CARD1"}}],
            }
        elif kind == 1:
            resource = {
                "resourceType": "ServiceRequest",
                "id": f"O{n:08d}",
                "meta": meta,
                "status": "active",
                "intent": "order",
                "priority": rng.choice(["routine", "urgent", "stat"]),
                "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8"}]},
                "subject": patient,
                "authoredOn": iso(start),
            }
        elif kind == 2:
            resource = {
                "resourceType": "DiagnosticReport",
                "id": f"R{n:08d}",
                "meta": meta,
                "status": "final",
                "basedOn": [{"reference": f"ServiceRequest/O{n - 1:08d}"}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8"}]},
                "subject": patient,
                "issued": iso(start + 240),
                "result": [{"reference": "#k"}],
                "contained": [
                    {
                        "resourceType": "Observation",
                        "id": "k",
                        "status": "final",
                        "code": {"coding": [{"code": "2823-3"}]},
                        "interpretation": [{"coding": [{"code": rng.choice(["N", "H", "HH"])}]}],
                    }
                ],
            }
        elif kind == 3:
            resource = {
                "resourceType": "Communication",
                "id": f"C{n:08d}",
                "status": "completed",
                "about": [{"reference": f"Appointment/A{n // 6 % 5000:07d}"}],
                "medium": [{"coding": [{"code": "SMS"}]}],
                "subject": patient,
                "recipient": [patient],
                "sent": iso(start + 30),
            }
        elif kind == 4:
            resource = {
                "resourceType": "DocumentReference",
                "id": f"D{n:08d}",
                "status": "current",
                "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]},
                "subject": patient,
                "date": iso(start + 600),
                "context": {"encounter": [{"reference": f"Encounter/E{n - 1:08d}"}]},
            }
        else:
            resource = {
                "resourceType": "Encounter",
                "id": f"E{n:08d}",
                "status": "finished",
                "class": {"code": "IMP"},
                "subject": patient,
                "period": {"start": iso(start - 4000), "end": iso(start)},
            }
        out.append(orjson.dumps(resource))
    return out


def _best(rounds: int, run: Callable[[], tuple[int, int]]) -> tuple[float, int, int]:
    best = float("inf")
    events = rejected = 0
    for _ in range(rounds):
        started = time.perf_counter()
        events, rejected = run()
        best = min(best, time.perf_counter() - started)
    return best, events, rejected


def _count(records: object) -> tuple[int, int]:
    events = rejected = 0
    for record in records:  # type: ignore[attr-defined]
        if isinstance(record, Rejected):
            rejected += 1
        else:
            events += 1
    return events, rejected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hl7", type=int, default=20000, help="synthetic HL7 messages")
    parser.add_argument("--fhir", type=int, default=40000, help="synthetic FHIR resources")
    parser.add_argument(
        "--filler", type=int, default=6, help="unread segments per HL7 message (realistic size)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure; the best counts")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    hl7_messages = _hl7_messages(args.hl7, rng, args.filler)
    fhir_lines = _fhir_resources(args.fhir, rng)
    hl7_stream = b"".join(hl7_messages)
    fhir_stream = b"\n".join(fhir_lines)
    print(f"python {platform.python_version()} on {platform.machine()}, one process, one thread")
    hl7_size = len(hl7_stream) / len(hl7_messages)
    fhir_size = len(fhir_stream) / len(fhir_lines)
    print(f"HL7 v2: {len(hl7_messages)} messages, {hl7_size:.0f} bytes each on average")
    print(f"FHIR: {len(fhir_lines)} resources, {fhir_size:.0f} bytes each on average")

    def hl7_each() -> tuple[int, int]:
        memory = AdapterMemory()
        return _count(r for m in hl7_messages for r in convert_message(m, None, memory))

    def hl7_file() -> tuple[int, int]:
        return _count(iter_records(hl7_stream, "hl7"))

    def fhir_each() -> tuple[int, int]:
        memory = AdapterMemory()
        return _count(r for line in fhir_lines for r in convert_json(line, None, memory))

    def fhir_file() -> tuple[int, int]:
        return _count(iter_records(fhir_stream, "fhir"))

    results = [
        ("HL7 v2 convert_message", len(hl7_messages), "messages", 10_000, hl7_each),
        ("HL7 v2 iter_records", len(hl7_messages), "messages", 10_000, hl7_file),
        ("FHIR convert_json", len(fhir_lines), "resources", 20_000, fhir_each),
        ("FHIR iter_records (NDJSON)", len(fhir_lines), "resources", 20_000, fhir_file),
    ]
    failed = False
    for label, count, unit, target, run in results:
        seconds, events, rejected = _best(args.rounds, run)
        rate = count / seconds
        verdict = "ok" if rate >= target else "BELOW TARGET"
        failed |= rate < target
        print(
            f"{label:28s} {rate:>10,.0f} {unit}/s  ({seconds * 1e6 / count:5.1f} µs each; "
            f"{events} events, {rejected} rejected; target {target:,}: {verdict})"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
