"""HL7 v2 ACKs built from the public sample messages, and the AA/AE/AR decision."""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest

from detectors.events import Event
from streams.adapters import AdapterMemory, convert_message
from streams.deadletter import INVALID, NO_EVENT, TOO_LARGE, UNSUPPORTED, Rejected
from streams.mllp.ack import AckError, MessageHeader, build_ack, escape, read_header
from streams.mllp.decide import NOT_HL7, decide, refuse

HL7_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "samples" / "hl7v2"
SAMPLES = sorted(HL7_DIR.glob("*.hl7"))
NOON = 1772452800.0  # 2026-03-02T12:00:00Z


def parse(ack: str) -> hl7.Message:
    return hl7.parse(ack)


def fields(segment: str) -> list[str]:
    return segment.split("|")


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_ack_answers_each_sample_with_its_control_id_and_swapped_parties(path: Path) -> None:
    raw = path.read_bytes()
    received = hl7.parse(raw.decode("utf-8-sig").replace("\n", "\r").strip())
    header = read_header(raw)
    assert header is not None

    ack = build_ack(header, "AA", now=NOON, control_id="ACK0001")
    assert ack.endswith("\r") and "\n" not in ack
    msh, msa = ack.rstrip("\r").split("\r")
    parsed = parse(ack)
    assert str(parsed.segment("MSA")[2]) == str(received.segment("MSH")[10])  # MSA-2 = MSH-10
    assert str(parsed.segment("MSA")[1]) == "AA"
    # Sending and receiving application and facility swapped, field by field.
    got, sent = fields(msh), fields(str(received.segment("MSH")))
    assert got[2:6] == [sent[4], sent[5], sent[2], sent[3]]
    assert got[1] == "^~\\&"
    assert got[6] == "20260302120000+0000"
    trigger = str(received.segment("MSH")[9][0][1])
    assert got[8] == f"ACK^{trigger}^ACK"
    assert got[9] == "ACK0001"
    assert got[10:12] == [sent[10], sent[11]]  # processing id and version echoed
    assert msa == f"MSA|AA|{sent[9]}"


def test_header_fields_of_a_sample() -> None:
    header = read_header((HL7_DIR / "LAB-ORU-1.hl7").read_bytes())  # starts with a BOM
    assert header == MessageHeader(
        field_separator="|",
        encoding_characters="^~\\&",
        sending_application="SomeSystem",
        sending_facility="",
        receiving_application="TransformationAgent",
        receiving_facility="",
        message_type="ORU^R01",
        control_id="182",
        processing_id="T",
        version="2.5",
    )
    assert header.trigger == "R01"


def test_the_received_separators_and_encoding_characters_are_used() -> None:
    raw = b"MSH#*@!%#SEND#FAC#RECV#RFAC#20260302##SIU*S12#C-9#P#2.4\rSCH#1"
    header = read_header(raw)
    assert header is not None and header.encoding_characters == "*@!%"
    error = AckError("200", "Unsupported message type", "E", UNSUPPORTED, "no #, no * here")
    ack = build_ack(header, "AE", "bad # and * text", error=error, now=NOON, control_id="K1")
    msh, msa, err = ack.rstrip("\r").split("\r")
    assert msh == "MSH#*@!%#RECV#RFAC#SEND#FAC#20260302120000+0000##ACK*S12*ACK#K1#P#2.4"
    assert msa == "MSA#AE#C-9#bad !F! and !S! text"
    assert err.split("#")[3] == "200*Unsupported message type*HL70357"
    assert err.split("#")[8] == "no !F!, no !S! here"


def test_text_is_escaped_and_cut_to_fit_msa_3() -> None:
    header = read_header(b"MSH|^~\\&|A|B|C|D|20260302||ADT^A01|77|P|2.5")
    text = "a|b^c~d\\e&f\rg\x0bh" + "x" * 200
    ack = build_ack(header, "AE", text, now=NOON, control_id="1")
    msa = ack.split("\r")[1]
    assert msa.startswith("MSA|AE|77|a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f g h")
    assert len(hl7.parse(ack).segment("MSA")[3][0]) <= 80
    assert escape("1|2", None) == "1\\F\\2"


def test_a_payload_that_is_not_hl7_gets_a_default_ack() -> None:
    assert read_header(b"hello there") is None
    assert read_header(b"MSHA^~\\&|x") is None  # a letter cannot be the separator
    assert read_header(b"MSH|^^\\&|A") is None  # encoding characters must differ
    ack = build_ack(None, "AR", "not HL7", now=NOON, control_id="9")
    msh, msa = ack.rstrip("\r").split("\r")
    assert msh == "MSH|^~\\&|||||20260302120000+0000||ACK|9|P|2.5"
    assert msa == "MSA|AR||not HL7"


def test_a_cut_header_keeps_only_whole_fields() -> None:
    head = b"MSH|^~\\&|APP|FAC|RCV|RFAC|20260302||SIU^S12|MSG-12345|P|2.5"
    assert read_header(head, complete=False).control_id == "MSG-12345"  # type: ignore[union-attr]
    cut = read_header(head[:-14], complete=False)  # ends inside MSH-10
    assert cut is not None and cut.control_id == "" and cut.message_type == "SIU^S12"
    assert read_header(head + b"\rPID|1", complete=False).version == "2.5"  # type: ignore[union-attr]


def test_latin_1_messages_are_answered_in_latin_1() -> None:
    header = read_header("MSH|^~\\&|CAFÉ|F|R|RF|2026||ADT^A08|1|P|2.5".encode("latin-1"))
    assert header is not None and header.charset == "latin-1"
    assert header.sending_application == "CAFÉ"


def test_unknown_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="acknowledgement code"):
        build_ack(None, "CA", now=NOON, control_id="1")


# -- decide ---------------------------------------------------------------------------


def convert(name: str) -> list[Event | Rejected]:
    raw = (HL7_DIR / name).read_bytes()
    return convert_message(raw, None, AdapterMemory(), origin="t", location="message 1")


def test_events_are_accepted() -> None:
    decision = decide(convert("LAB-ORU-1.hl7"))
    assert decision.code == "AA" and decision.accepted
    assert [e.id for e in decision.events] == ["182:result.reported:1", "182:result.reported:2"]
    assert decision.rejected == () and decision.error is None and decision.kind is None


def test_no_event_is_accepted_and_marked() -> None:
    decision = decide(convert("MDM-T02-01.hl7"))
    assert decision.code == "AA" and decision.kind == NO_EVENT
    assert [r.kind for r in decision.rejected] == [NO_EVENT]
    assert decision.events == () and decision.error is None


def test_unsupported_and_invalid_messages_are_errors() -> None:
    raw = (HL7_DIR / "ADT-A04-01.hl7").read_bytes().replace(b"ADT^A04^ADT_A04", b"ADT^A99")
    unsupported = decide(convert_message(raw, None, AdapterMemory(), origin="t"))
    assert unsupported.code == "AE" and unsupported.kind == UNSUPPORTED
    assert unsupported.error is not None and unsupported.error.code == "200"
    assert unsupported.text == "unsupported message type ADT^A99"

    cut = (HL7_DIR / "SIU-S12-01.hl7").read_bytes()[:200]  # before SCH-2
    invalid = decide(convert_message(cut, None, AdapterMemory(), origin="t"))
    assert invalid.code == "AE" and invalid.kind == INVALID and invalid.text
    assert invalid.error is not None and invalid.error.severity == "E"


def test_a_message_with_some_parts_rejected_is_accepted_with_a_warning() -> None:
    ok = Event("m:order.placed:1", "order.placed", NOON, "P1", {"order": "O1"})
    bad = Rejected("t", "message 1 ORC 2", "no order id in ORC-2, OBR-2", "", INVALID)
    decision = decide([ok, bad])
    assert decision.code == "AA" and decision.events == (ok,) and decision.rejected == (bad,)
    assert decision.text == "accepted; 1 of 2 parts rejected"
    assert decision.error is not None and decision.error.severity == "W"


def test_refusals_are_ar() -> None:
    big = Rejected("t", "message 3", "message of 2,000,000 bytes is over the limit", "", TOO_LARGE)
    decision = refuse(big, TOO_LARGE)
    assert decision.code == "AR" and decision.kind == TOO_LARGE
    assert decision.error is not None and decision.error.kind == TOO_LARGE
    junk = refuse(Rejected("t", "message 1", "not HL7", "", INVALID), NOT_HL7)
    assert junk.error is not None and (junk.error.code, junk.error.kind) == ("100", INVALID)
