"""Property tests: arbitrary input never crashes or hangs, and anything bad is a
``Rejected`` with a reason. "internal error" in a reason means a bug reached the safety
net, so it fails the test too."""

from __future__ import annotations

import math
import os
from typing import Any

import orjson
from adapters_support import FHIR_SAMPLES, HL7_SAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.events import Event, event_from_dict
from streams.adapters import (
    AdapterMemory,
    Rejected,
    convert_message,
    convert_resource,
    iter_records,
)
from streams.adapters.fhir.convert import SUPPORTED_RESOURCE_TYPES

# CAREWATCH_FUZZ_EXAMPLES=20000 for a long hunt; the default keeps the suite quick.
FUZZ = settings(
    max_examples=int(os.environ.get("CAREWATCH_FUZZ_EXAMPLES", "200")),
    deadline=2000,  # ms per example: a hang or a quadratic blow-up fails, pandas warm-up does not
    suppress_health_check=[HealthCheck.too_slow],
)
HL7_BYTES = [p.read_bytes() for p in HL7_SAMPLES]
FHIR_OBJECTS = [orjson.loads(p.read_bytes()) for p in FHIR_SAMPLES]


def check(records: list[Event | Rejected]) -> None:
    for record in records:
        if isinstance(record, Rejected):
            assert record.reason.strip()
            assert "internal error" not in record.reason, record.reason
            assert record.location
        else:
            assert isinstance(record, Event)
            assert math.isfinite(record.time)
            # Whatever we emit must satisfy the canonical contract.
            assert event_from_dict(orjson.loads(orjson.dumps(record.to_dict()))) == record


def substantial(data: bytes) -> bool:
    """More than whitespace, BOMs and MLLP framing."""
    return bool(data.replace(b"\xef\xbb\xbf", b"").translate(None, b"\x0b\x1c").strip())


@FUZZ
@given(st.binary(max_size=2000))
def test_hl7_arbitrary_bytes(data: bytes) -> None:
    records = list(iter_records(data, "hl7"))
    check(records)
    if substantial(data) and not data.lstrip().startswith((b"FHS", b"BHS", b"BTS", b"FTS")):
        assert records


@st.composite
def mutated(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        where = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if action == "flip":
            data[where] = draw(
                st.sampled_from(list(b'|^~\\&\r\n\x0b\x1c0123456789AZaz\x00\xff{}[]":,'))
            )
        elif action == "cut":
            del data[where:]
        elif action == "insert":
            data[where:where] = draw(st.binary(max_size=12))
        else:
            del data[where : where + draw(st.integers(1, 40))]
    return bytes(data)


@FUZZ
@given(mutated(HL7_BYTES))
def test_hl7_mutated_samples(data: bytes) -> None:
    memory = AdapterMemory()
    check(list(iter_records(data, "hl7", memory=memory)))


HL7_ALPHABET = st.sampled_from(list('|^~\\&\r\n ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."é'))


@FUZZ
@given(
    st.sampled_from(
        [
            "SIU^S12",
            "SIU^S13",
            "SIU^S14",
            "SIU^S15",
            "SIU^S26",
            "ORM^O01",
            "OML^O21",
            "ORU^R01",
            "MDM^T02",
            "ADT^A03",
            "ADT^A04",
            "ADT^A08",
            "ACK^A01",
        ]
    ),
    st.lists(
        st.tuples(
            st.sampled_from(
                ["PID", "PV1", "EVN", "SCH", "TQ1", "AIS", "AIL", "ORC", "OBR", "OBX", "TXA", "ZNT"]
            ),
            st.text(HL7_ALPHABET, max_size=80),
        ),
        max_size=12,
    ),
)
def test_hl7_structured_garbage(message_type: str, segments: list[tuple[str, str]]) -> None:
    text = "MSH|^~\\&|APP|FAC|CW|FAC|20260302093000||" + message_type + "|C1|P|2.5\r"
    text += "\r".join(f"{sid}|{body}" for sid, body in segments)
    check(convert_message(text))
    check(convert_message(text.replace("\r", "\n")))


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
FHIR_KEYS = st.sampled_from(
    [
        "id",
        "meta",
        "versionId",
        "lastUpdated",
        "status",
        "start",
        "created",
        "participant",
        "actor",
        "reference",
        "identifier",
        "system",
        "value",
        "cancelationReason",
        "coding",
        "code",
        "about",
        "basedOn",
        "medium",
        "subject",
        "recipient",
        "sent",
        "received",
        "intent",
        "priority",
        "authoredOn",
        "issued",
        "result",
        "contained",
        "interpretation",
        "focus",
        "for",
        "lastModified",
        "type",
        "date",
        "context",
        "encounter",
        "related",
        "period",
        "end",
        "hospitalization",
        "dischargeDisposition",
        "deceasedDateTime",
        "deceasedBoolean",
        "specialty",
        "serviceProvider",
        "entry",
        "resource",
        "fullUrl",
        "resourceType",
    ]
)
JSON_VALUES = st.recursive(
    JSON_SCALARS
    | st.sampled_from(
        ["2026-03-02T09:30:00Z", "2026-03-02", "Patient/P1", "#k", "booked", "final", "completed"]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FHIR_KEYS, inner, max_size=6),
    max_leaves=25,
)


@FUZZ
@given(
    st.sampled_from([*SUPPORTED_RESOURCE_TYPES, "Bundle", "Observation"]),
    st.dictionaries(FHIR_KEYS, JSON_VALUES),
)
def test_fhir_arbitrary_resources(resource_type: str, body: dict[str, Any]) -> None:
    resource = {**body, "resourceType": resource_type}
    records = convert_resource(resource, memory=AdapterMemory())
    check(records)
    assert records  # every resource leaves a trace: an event or a rejection


@FUZZ
@given(st.sampled_from(FHIR_OBJECTS), st.dictionaries(FHIR_KEYS, JSON_VALUES, max_size=4))
def test_fhir_samples_with_overrides(sample: dict[str, Any], overrides: dict[str, Any]) -> None:
    check(convert_resource({**sample, **overrides}))


@FUZZ
@given(st.binary(max_size=2000))
def test_fhir_arbitrary_bytes(data: bytes) -> None:
    records = list(iter_records(data, "fhir"))
    check(records)
    if substantial(data):
        assert records


@FUZZ
@given(mutated([p.read_bytes() for p in FHIR_SAMPLES]))
def test_fhir_mutated_samples(data: bytes) -> None:
    check(list(iter_records(data, "fhir")))


@FUZZ
@given(st.binary(max_size=1000))
def test_csv_arbitrary_bytes(data: bytes) -> None:
    check(list(iter_records(data, "csv")))


CSV_CELLS = st.sampled_from(
    [
        "",
        "order.placed",
        "2026-03-02T09:30:00Z",
        "2026-03-02",
        "x",
        "1",
        "true",
        "maybe",
        '"',
        ",",
        "12.5",
    ]
)


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            ["id", "type", "time", "patient", "refs.order", "attrs.abnormal", "attrs.capacity"]
        ),
        max_size=7,
    ),
    st.lists(st.lists(CSV_CELLS, max_size=9), max_size=8),
)
def test_csv_structured(header: list[str], rows: list[list[str]]) -> None:
    text = "\n".join([",".join(header), *(",".join(row) for row in rows)]) + "\n"
    records = list(iter_records(text.encode(), "csv"))
    check(records)


@FUZZ
@given(st.binary(max_size=1000))
def test_jsonl_arbitrary_bytes(data: bytes) -> None:
    records = list(iter_records(data, "jsonl"))
    check(records)


@FUZZ
@given(st.binary(max_size=600))
def test_autodetect_never_raises(data: bytes) -> None:
    check(list(iter_records(data)))
