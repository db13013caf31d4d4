"""The generator's HL7 v2 and FHIR R4 output, read back by the project's own adapters with
the generator's site mapping, gives the detectors what the canonical JSON Lines give.

Outcomes are compared on ``(detector, key, outcome, opened_at, due_at, closed_at if
late)``: event ids (and so failure ids) differ between formats, keys and times do not.

What a format cannot feed is said here explicitly (see ``DETECTORS_FED``):

- HL7 v2 carries no ``session.capacity`` and no ``result.acknowledged`` (no message the
  adapters read), so ``clinic-overbooked`` and ``result-unacknowledged`` are compared
  only for JSON Lines and, for ``result-unacknowledged``, FHIR;
- FHIR carries no ``session.capacity`` (and Appointments name no session), so
  ``clinic-overbooked`` is compared only for JSON Lines;
- a hospital reschedule written without ``previous_start`` (an edge case) reaches the
  detectors of both formats with the remembered previous start, so its notice deadline
  is the earlier one; ``format_truth`` re-decides those records, and the test shows
  they are the only ones where HL7/FHIR and JSON Lines differ.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from random import Random
from typing import Any

import orjson
import pytest

from detectors.rules import parse_settings
from streams.adapters import Rejected, convert_json, convert_message, iter_records
from streams.report import RunSummary
from streams.runner import Runner
from streams.sinks import MemorySink
from streams.synthetic import DeliveryFaults, FailureRates, Generated, GeneratorConfig, generate
from streams.synthetic.faults import deliver
from streams.synthetic.formats import (
    DETECTORS,
    DETECTORS_FED,
    NOT_CARRIED,
    OUTPUT_FORMATS,
    deliver_as,
    format_truth,
    generator_mapping,
)
from streams.synthetic.formats.expected import reschedules_without_previous_start
from streams.synthetic.formats.malformed import (
    FHIR_KINDS,
    HL7_KINDS,
    malformed_fhir,
    malformed_hl7,
)

FAR_AFTER = 120 * 86400.0  # as-of: well past every deadline and the late retention
Projection = tuple[Any, ...]

#: Rates with many failures and boundary cases, so the edge cases occur at small scale.
EDGY = FailureRates(
    notice_late=0.2,
    notice_missed=0.15,
    result_late=0.2,
    result_missed=0.1,
    order_cancelled=0.1,
    ack_late=0.2,
    ack_missed=0.1,
    summary_late=0.2,
    summary_missed=0.1,
    letter_late=0.2,
    letter_missed=0.1,
    overbooked=0.3,
    contact_after_death=0.8,
    edge_cases=0.5,
)

CASES = {
    "seed 1, 4 days": (GeneratorConfig(days=4, seed=1, scale="small"), DeliveryFaults()),
    "seed 2, 4 days, faults": (
        GeneratorConfig(days=4, seed=2, scale="small"),
        DeliveryFaults(shuffle_within=300.0, duplicates=0.02, malformed=0.01),
    ),
    "seed 3, 6 days, edge cases": (
        GeneratorConfig(days=6, seed=3, scale="small", rates=EDGY),
        DeliveryFaults(),
    ),
    "seed 4, 5 days, edge cases and faults": (
        GeneratorConfig(days=5, seed=4, scale="small", rates=EDGY),
        DeliveryFaults(shuffle_within=600.0, duplicates=0.03, malformed=0.02),
    ),
}


@dataclass(frozen=True)
class FormatRun:
    """One format of one case, read back and run through the engine."""

    fmt: str
    data: bytes
    sink: MemorySink
    summary: RunSummary
    outcomes: Counter[Projection]


def project(row: dict[str, Any]) -> Projection:
    closed = row["closed_at"] if row["outcome"] == "late" else None
    return (row["detector"], row["key"], row["outcome"], row["opened_at"], row["due_at"], closed)


def only(outcomes: Counter[Projection], detectors: frozenset[str]) -> Counter[Projection]:
    return Counter({p: n for p, n in outcomes.items() if p[0] in detectors})


def run_format(gen: Generated, fmt: str, faults: DeliveryFaults, seed: int) -> FormatRun:
    data = b"".join(deliver_as(gen.records, fmt, faults, seed))
    sink = MemorySink()
    runner = Runner(parse_settings(""), sink)
    runner.feed(iter_records(data, fmt, generator_mapping(), origin=f"generated.{fmt}"))
    summary = runner.finish(as_of=max(t for t, _, _ in gen.records) + FAR_AFTER)
    outcomes = Counter(project(o.to_outcome_dict()) for o in sink.latest.values())
    return FormatRun(fmt, data, sink, summary, outcomes)


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[Generated, DeliveryFaults, dict[str, FormatRun]]:
    config, faults = CASES[request.param]
    gen = generate(config)
    runs = {fmt: run_format(gen, fmt, faults, config.seed) for fmt in OUTPUT_FORMATS}
    return gen, faults, runs


def test_each_format_gives_the_truth_a_reader_of_it_can_find(
    case: tuple[Generated, DeliveryFaults, dict[str, FormatRun]],
) -> None:
    gen, _, runs = case
    for fmt, run in runs.items():
        expected = Counter(project(row) for row in format_truth(gen, fmt))
        assert run.sink.open == [], fmt
        assert only(run.outcomes, DETECTORS_FED[fmt]) == expected, fmt
    # JSON Lines feed every detector, and there format_truth is the generator's truth
    assert DETECTORS_FED["jsonl"] == DETECTORS
    assert runs["jsonl"].outcomes == Counter(project(row) for row in gen.truth)


#: Deaths registered days late, discharges keyed in after their summary, a day of
#: messages re-sent three days on: beyond the allowed lateness, within the correction
#: horizon. clinic-overbooked is left out: it applies bookings beyond the allowed
#: lateness as they come (a known limit, docs/detectors.md).
LATE = (
    GeneratorConfig(days=5, seed=5, scale="small", rates=EDGY),
    DeliveryFaults(
        shuffle_within=300.0, delayed=0.05, delay_within=5 * 86400.0, resend_after=3 * 86400.0
    ),
)


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_late_and_re_sent_delivery_gives_each_format_its_truth(fmt: str) -> None:
    config, faults = LATE
    gen = generate(config)
    run = run_format(gen, fmt, faults, config.seed)
    fed = DETECTORS_FED[fmt] - {"clinic-overbooked"}
    if fmt == "fhir":
        # FHIR R4 has no previous start: the reader derives a reschedule from the last
        # start it remembers, so an Appointment version delivered days late derives a
        # wrong one (a known limit, docs/adapters.md); the other detectors hold
        fed -= {"reschedule-notice"}
    expected = Counter(project(row) for row in format_truth(gen, fmt) if row["detector"] in fed)
    assert only(run.outcomes, fed) == expected
    assert run.sink.open == []
    # the re-sent day is duplicates, never id conflicts; nothing is beyond the horizon
    # (a re-sent FHIR Appointment version that changes nothing is "no-event", as always)
    assert run.summary.duplicates > 0
    assert {r.kind for r in run.sink.rejected} <= {"no-event"}


def test_the_three_formats_agree_on_what_they_all_carry(
    case: tuple[Generated, DeliveryFaults, dict[str, FormatRun]],
) -> None:
    gen, _, runs = case
    common = DETECTORS_FED["hl7"] & DETECTORS_FED["fhir"]
    hl7, fhir, jsonl = (only(runs[f].outcomes, common) for f in ("hl7", "fhir", "jsonl"))
    assert hl7 == fhir
    # result-unacknowledged: FHIR and JSON Lines agree (HL7 carries no acknowledgements)
    unack = frozenset({"result-unacknowledged"})
    assert only(runs["fhir"].outcomes, unack) == only(runs["jsonl"].outcomes, unack)
    assert only(runs["fhir"].outcomes, unack)
    # HL7/FHIR and JSON Lines differ only in the reschedules written without a previous
    # start, which the HL7 and FHIR readers fill in from what they remember
    refilled = reschedules_without_previous_start(gen.records)
    opened = {
        (row["key"], row["opened_at"])
        for row in gen.truth
        if row["detector"] == "reschedule-notice" and row["opening_event"] in refilled
    }
    differ = (hl7 - jsonl) + (jsonl - hl7)
    assert all(p[0] == "reschedule-notice" and (p[1], p[3]) in opened for p in differ), differ
    truth = {row["failure_id"]: row for row in gen.truth}
    redecided = [row for row in format_truth(gen, "hl7") if row != truth[row["failure_id"]]]
    assert sum(differ.values()) == 2 * len(redecided)


def test_what_a_format_cannot_feed(
    case: tuple[Generated, DeliveryFaults, dict[str, FormatRun]],
) -> None:
    gen, _, runs = case
    truth = Counter(row["detector"] for row in gen.truth)
    for fmt in ("hl7", "fhir"):
        found = Counter(p[0] for p in runs[fmt].outcomes.elements())
        # no capacity, no clinic-overbooked opportunity
        assert "clinic-overbooked" not in found, fmt
        assert truth["clinic-overbooked"] > 0
    # without acknowledgements every abnormal HL7 result ends missed: not a finding
    hl7_unack = [p for p in runs["hl7"].outcomes.elements() if p[0] == "result-unacknowledged"]
    assert len(hl7_unack) == truth["result-unacknowledged"]
    assert {p[2] for p in hl7_unack} == {"missed"}


def test_only_the_malformed_records_are_rejected(
    case: tuple[Generated, DeliveryFaults, dict[str, FormatRun]],
) -> None:
    gen, faults, runs = case
    for fmt, run in runs.items():
        carried = sum(1 for _, _, e in gen.records if e["type"] not in NOT_CARRIED[fmt])
        expected = round(faults.malformed * carried)
        assert len(run.sink.rejected) == run.summary.rejected == expected, fmt
        assert {r.kind for r in run.sink.rejected} <= {"invalid", "unsupported"}, fmt


# -- every message and resource, one by one ----------------------------------------------

#: Attributes the adapters read back exactly, by event type (and the formats that do).
SAME_ATTRS: dict[str, tuple[str, ...]] = {
    "appointment.booked": ("start", "clinic", "specialty"),
    "appointment.rescheduled": ("start", "previous_start", "initiated_by", "clinic"),
    "appointment.cancelled": ("previous_start", "initiated_by"),
    "appointment.attended": ("clinic", "specialty"),
    "patient.notified": ("channel",),
    "document.sent": ("kind",),
    "order.placed": ("test", "priority"),
    "result.reported": ("test", "abnormal", "critical"),
    "encounter.discharged": ("site", "specialty"),
}
#: Refs a format does not carry: FHIR Appointments name no session; an HL7 ORU names
#: no report document.
DROPPED_REFS = {"fhir": {"session"}, "hl7": {"document"}}


@pytest.fixture(scope="module")
def edgy_gen() -> Generated:
    return generate(GeneratorConfig(days=6, seed=5, scale="small", rates=EDGY))


@pytest.mark.parametrize(("fmt", "mllp"), [("hl7", False), ("hl7", True), ("fhir", False)])
def test_every_message_becomes_its_canonical_event(
    edgy_gen: Generated, fmt: str, mllp: bool
) -> None:
    carried = [e for _, _, e in edgy_gen.records if e["type"] not in NOT_CARRIED[fmt]]
    data = b"".join(deliver_as(edgy_gen.records, fmt, DeliveryFaults(), 5, mllp=mllp))
    if mllp:
        assert data.startswith(b"\x0b") and data.endswith(b"\x1c\r")
    records = list(iter_records(data, fmt, generator_mapping()))
    assert [r for r in records if isinstance(r, Rejected)] == []
    assert len(records) == len(carried)  # one event per message or resource
    refilled = reschedules_without_previous_start(edgy_gen.records)
    for want, got in zip(carried, records, strict=True):
        assert not isinstance(got, Rejected)
        where = f"{fmt} {want['id']}"
        if fmt == "hl7":
            assert got.source is not None and got.source["message_id"] == want["id"], where
        event = got.to_dict()
        assert (event["type"], event["time"], event.get("patient")) == (
            want["type"],
            want["time"],
            want.get("patient"),
        ), where
        for kind, ref in want["refs"].items():
            if kind not in DROPPED_REFS[fmt]:
                assert event["refs"].get(kind) == ref, (where, kind)
        for name in SAME_ATTRS.get(want["type"], ()):
            if name in want["attrs"]:
                assert event["attrs"].get(name) == want["attrs"][name], (where, name)
        if want["id"] in refilled:  # written without a previous start: the reader knows it
            assert "previous_start" in event["attrs"], where


@pytest.mark.parametrize("kind", HL7_KINDS)
def test_each_malformed_hl7_message_is_one_rejection(edgy_gen: Generated, kind: str) -> None:
    rng = _Choosing(kind)
    text = malformed_hl7(rng, edgy_gen.events[10], "X000000001")
    out = convert_message(text, generator_mapping())
    assert len(out) == 1 and isinstance(out[0], Rejected), out
    assert out[0].kind in ("invalid", "unsupported"), out[0]


@pytest.mark.parametrize("kind", FHIR_KINDS)
def test_each_malformed_fhir_line_is_one_rejection(edgy_gen: Generated, kind: str) -> None:
    rng = _Choosing(kind)
    line = malformed_fhir(rng, edgy_gen.events[10], "X000000001")
    assert b"\n" not in line
    out = convert_json(line, generator_mapping())
    assert len(out) == 1 and isinstance(out[0], Rejected), out
    assert out[0].kind in ("invalid", "unsupported"), out[0]


class _Choosing(Random):
    """A Random whose first ``choice`` among the malformed kinds is ``kind``."""

    def __init__(self, kind: str) -> None:
        super().__init__(0)
        self.kind = kind

    def choice(self, seq: Any) -> Any:
        if self.kind in seq:
            return self.kind
        return super().choice(seq)


# -- bytes -----------------------------------------------------------------------------


def test_jsonl_output_is_the_canonical_delivery(edgy_gen: Generated) -> None:
    faults = DeliveryFaults(shuffle_within=300.0, duplicates=0.02, malformed=0.01)
    assert list(deliver_as(edgy_gen.records, "jsonl", faults, 9)) == list(
        deliver(edgy_gen.records, faults, 9)
    )


@pytest.mark.parametrize("fmt", ["hl7", "fhir"])
def test_same_seed_same_bytes(fmt: str) -> None:
    faults = DeliveryFaults(shuffle_within=300.0, duplicates=0.02, malformed=0.01)

    def once(seed: int) -> bytes:
        gen = generate(GeneratorConfig(days=2, seed=seed, scale="small"))
        return b"".join(deliver_as(gen.records, fmt, faults, seed))

    first = once(6)
    assert once(6) == first
    assert once(7) != first


def test_hl7_messages_look_like_hl7(edgy_gen: Generated) -> None:
    data = b"".join(deliver_as(edgy_gen.records, "hl7", DeliveryFaults(), 5))
    messages = data.split(b"\rMSH|")
    assert b"\n" not in data
    kinds = Counter(m.split(b"|")[8 if i == 0 else 7] for i, m in enumerate(messages))
    assert set(kinds) >= {
        b"SIU^S12^SIU_S12",
        b"SIU^S13^SIU_S13",
        b"SIU^S14^SIU_S14",
        b"SIU^S15^SIU_S15",
        b"SIU^S26^SIU_S26",
        b"ZLT^Z01^ZLT_Z01",
        b"MDM^T02^MDM_T02",
        b"OML^O21^OML_O21",
        b"ORM^O01^ORM_O01",
        b"ORU^R01^ORU_R01",
        b"ADT^A03^ADT_A03",
        b"ADT^A08^ADT_A01",
    }
    assert b"U\\T\\E^Urea and electrolytes" in data  # a delimiter in a code is escaped
    control_ids = [m.split(b"|")[9 if i == 0 else 8] for i, m in enumerate(messages)]
    assert len(set(control_ids)) == len(control_ids)


def test_fhir_resources_version_one_appointment(edgy_gen: Generated) -> None:
    data = b"".join(deliver_as(edgy_gen.records, "fhir", DeliveryFaults(), 5))
    resources = [orjson.loads(line) for line in data.splitlines()]
    kinds = Counter(r["resourceType"] for r in resources)
    assert set(kinds) == {
        "Appointment",
        "Communication",
        "DocumentReference",
        "ServiceRequest",
        "DiagnosticReport",
        "Task",
        "Encounter",
        "Patient",
    }
    rescheduled = next(e for e in edgy_gen.events if e["type"] == "appointment.rescheduled")
    versions = [
        r
        for r in resources
        if r["resourceType"] == "Appointment" and r["id"] == rescheduled["refs"]["appointment"]
    ]
    assert [v["meta"]["versionId"] for v in versions] == [
        str(n) for n in range(1, len(versions) + 1)
    ]
    assert len({v["start"] for v in versions}) >= 2  # a reschedule is a new start
