"""The HL7 v2 reader: framing, splitting, field access (against python-hl7), times."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import hl7
import pytest
from adapters_support import HL7_SAMPLES, convert, iso, sample
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.errors import InputError
from streams.adapters.hl7.text import Hl7Message, decode_message, parse_field_path, split_messages
from streams.adapters.times import SiteClock


@pytest.mark.parametrize("path", HL7_SAMPLES, ids=lambda p: p.name)
def test_field_values_match_python_hl7(path: object) -> None:
    """Our lazy splitter reads every field, repetition, component and subcomponent of
    every sample exactly as python-hl7's extract_field does."""
    text = decode_message(path.read_bytes())  # type: ignore[attr-defined]
    ours = Hl7Message(text)
    theirs = hl7.parse(text)
    checked = 0
    for index, segment in enumerate(ours.segments):
        reference = theirs[index]
        assert str(reference[0]) == segment.id
        for field in range(1, len(segment.fields)):
            for rep in (1, 2):
                for comp in (1, 2, 4):
                    for sub in (1, 2):
                        try:
                            expected = reference.extract_field(1, field, rep, comp, sub)
                        except (IndexError, KeyError):
                            continue
                        expected = str(expected).strip()
                        expected = "" if expected == '""' else expected
                        got = ours.component(segment, field, rep, comp, sub)
                        assert got == expected, (segment.id, field, rep, comp, sub)
                        checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PID-3", ("PID", 3, 1, 1, 1, 1)),
        ("SCH-11.4", ("SCH", 11, 1, 4, 1, 1)),
        ("PID-3.4.2", ("PID", 3, 1, 4, 2, 1)),
        ("PID.F3.R2.C1", ("PID", 3, 2, 1, 1, 1)),  # python-hl7 accessor keys
        ("OBX2.5", ("OBX", 5, 1, 1, 1, 2)),
        ("ZNT-1", ("ZNT", 1, 1, 1, 1, 1)),
    ],
)
def test_field_paths(text: str, expected: tuple[object, ...]) -> None:
    path = parse_field_path(text)
    assert (
        path.segment,
        path.field,
        path.repetition,
        path.component,
        path.subcomponent,
        path.occurrence,
    ) == expected


@pytest.mark.parametrize("text", ["PID", "pid-3", "PID-0", "PID-3.x", "PID 3", "PID.F0", ""])
def test_bad_field_paths(text: str) -> None:
    with pytest.raises(ValueError, match=r"field path|start at 1"):
        parse_field_path(text)


def test_split_handles_framing_and_envelopes() -> None:
    one = sample("hl7v2/SIU-S12-01.hl7")
    two = sample("hl7v2/SIU-S26-01.hl7")
    mllp = b"\x0b" + one + b"\x1c\r" + b"\x0b" + two + b"\x1c\r"
    batch = b"FHS|^~\\&|X\rBHS|^~\\&|X\r" + one + b"\r" + two + b"\rBTS|2\rFTS|1\r"
    for stream in (mllp, batch):
        parts = list(split_messages([stream]))
        assert [n for n, _ in parts] == [1, 2]
        assert [decode_message(raw).split("\r")[0][:40] for _, raw in parts] == [
            one.split(b"\r")[0][:40].decode(),
            two.split(b"\r")[0][:40].decode(),
        ]
    # The same stream fed in tiny chunks splits the same way.
    chunks = [mllp[i : i + 7] for i in range(0, len(mllp), 7)]
    assert list(split_messages(chunks)) == list(split_messages([mllp]))


STREAM = (
    b"junk\r"
    + b"".join(HL7_SAMPLES[i].read_bytes() for i in (3, 4, 10, 11))
    + b"\x0bMSH|^~\\&|X\x1c\r"
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 600), max_size=40))
def test_split_is_the_same_for_any_chunking(cuts: list[int]) -> None:
    chunks, at = [], 0
    for size in cuts:
        chunks.append(STREAM[at : at + size])
        at += size
    chunks.append(STREAM[at:])
    assert list(split_messages(chunks)) == list(split_messages([STREAM]))


def test_split_is_linear_in_the_input() -> None:
    # 64 MiB without any message, and one message of 64 MiB (a PDF in OBX-5, say), in
    # 1 MiB chunks: neither may be re-scanned or re-copied per chunk.
    block = b"x" * (1 << 20)
    started = time.perf_counter()
    ((number, lead),) = list(split_messages([block] * 64))
    assert (number, len(lead)) == (0, 4096)
    ((number, whole),) = list(split_messages([sample("hl7v2/SIU-S12-01.hl7"), *[block] * 64]))
    assert number == 1 and len(whole) > 64 << 20
    assert time.perf_counter() - started < 10


def test_split_reports_leading_garbage() -> None:
    parts = list(split_messages([b"hello\r" + sample("hl7v2/SIU-S12-01.hl7")]))
    assert parts[0] == (0, b"hello\r")
    assert [n for n, _ in parts] == [0, 1]
    assert list(split_messages([b"\x0b \r\n\x1c"])) == []


@pytest.mark.parametrize("terminator", [b"\r\n", b"\n", b"\r"])
def test_any_segment_terminator(terminator: bytes) -> None:
    text = sample("hl7v2/SIU-S12-01.hl7").replace(b"\r", terminator)
    events, rejected = convert(text, "hl7")
    assert rejected == []
    assert [(e.type, e.refs["appointment"], iso(e)) for e in events] == [
        ("appointment.booked", "36996", "2021-09-14T09:05:00+00:00")
    ]


def test_stray_lf_inside_a_field_stays_in_the_field() -> None:
    message = (
        b"MSH|^~\\&|LAB|TRUST|CW|TRUST|202603020930||ORM^O01|M-1|P|2.5\r"
        b"PID|1||P1\r"
        b"ORC|NW|ORD-1||||||||||(608)258-\n8866\r"
        b"OBR|1|ORD-1||CBC^Full blood count^L|||||||||||||||||||||||^^^^^S\r"
    )
    events, rejected = convert(message, "hl7")
    assert rejected == []
    assert [(e.refs, e.attrs["priority"], e.attrs["test"]) for e in events] == [
        ({"order": "ORD-1"}, "stat", "CBC")
    ]


def test_escapes_are_decoded() -> None:
    message = Hl7Message("MSH|^~\\&|A|B\rPID|1||X\\T\\Y^^^A\\S\\B\rNTE|1||bad \\.spX\\ escape")
    pid = message.first("PID")
    assert pid is not None
    assert message.component(pid, 3, 1, 1) == "X&Y"
    assert message.component(pid, 3, 1, 4) == "A^B"
    nte = message.first("NTE")
    assert nte is not None
    assert "escape" in message.component(nte, 3)


def test_custom_separators() -> None:
    message = Hl7Message("MSH#*!@%#A#B#20260302##SIU*S12#X1\rSCH#1*2!3")
    sch = message.first("SCH")
    assert sch is not None
    assert message.component(sch, 1, 1, 2) == "2"
    assert message.component(sch, 1, 2, 1) == "3"


@pytest.mark.parametrize(
    "text",
    ["", "MSH", "PID|1|2", "MSH1^~\\&|", "MSH|^^^^|x", "MSH|^~\\&|A\rP D|1", "MSH|^a\\&|"],
)
def test_unusable_messages(text: str) -> None:
    with pytest.raises(InputError):
        Hl7Message(text)


LONDON = SiteClock.named("Europe/London")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20260302093000+0000", "2026-03-02T09:30:00+00:00"),
        ("202603020930-0030", "2026-03-02T10:00:00+00:00"),  # python-hl7 gets this one wrong
        ("20260302093000.25+0100", "2026-03-02T08:30:00.250000+00:00"),
        ("202603020930", "2026-03-02T09:30:00+00:00"),  # GMT in winter
        ("202607020930", "2026-07-02T08:30:00+00:00"),  # BST in summer
        ("2026070209", "2026-07-02T08:00:00+00:00"),
        ("20260702", "2026-07-01T23:00:00+00:00"),  # a date: local midnight
        ("202610250130", "2026-10-25T00:30:00+00:00"),  # autumn fold: the first (BST) 01:30
        ("202603290130", "2026-03-29T01:30:00+00:00"),  # spring gap: read with the GMT offset
    ],
)
def test_hl7_times(text: str, expected: str) -> None:
    seconds = LONDON.hl7(text)
    assert datetime.fromtimestamp(seconds, UTC).isoformat() == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026",
        "202603",
        "20260302093000+01",
        "20261302",
        "20260302256000",
        "2026-03-02",
        "x",
        "20260302+2500",
    ],
)
def test_bad_hl7_times(text: str) -> None:
    with pytest.raises(InputError):
        LONDON.hl7(text)


def test_date_only_can_be_refused() -> None:
    strict = SiteClock.named("Europe/London", "reject")
    with pytest.raises(InputError, match="date_only: reject"):
        strict.hl7("20260302")
    with pytest.raises(InputError, match="date_only: reject"):
        strict.iso("2026-03-02")
    assert strict.hl7("202603020000") == LONDON.hl7("20260302")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-12-09T09:00:00Z", "2013-12-09T09:00:00+00:00"),
        ("2013-12-09T09:00:00+10:00", "2013-12-08T23:00:00+00:00"),
        ("2013-07-09T09:00:00", "2013-07-09T08:00:00+00:00"),  # no offset: London, BST
        ("2013-12-09", "2013-12-09T00:00:00+00:00"),
    ],
)
def test_iso_times(text: str, expected: str) -> None:
    assert datetime.fromtimestamp(LONDON.iso(text), UTC).isoformat() == expected


@pytest.mark.parametrize("text", ["2013", "2013-12", "yesterday", "2013-13-01T00:00:00Z"])
def test_bad_iso_times(text: str) -> None:
    with pytest.raises(InputError):
        LONDON.iso(text)
