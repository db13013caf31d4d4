"""The MLLP listener over real sockets on 127.0.0.1: every message accounted for.

Each test starts the listener in-process on an ephemeral port and talks to it with
asyncio clients. The tests wait for behaviour (an ACK, the connection closing), never
for a length of time.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from pathlib import Path

import pytest

from streams.adapters import AdapterMemory, Rejected, convert_message
from streams.mllp.appender import AppendError
from streams.mllp.framing import frame
from streams.mllp.handoff import MemoryHandoff

from .support import SAMPLES, Ack, Client, listening, sample

MAX = 64 * 1024


def expected_ids(paths: list[Path]) -> Counter[str]:
    """Event ids of the messages in ``paths`` (several samples share a control id, so
    an id can come from more than one message)."""
    memory = AdapterMemory()
    ids: Counter[str] = Counter()
    for path in paths:
        for record in convert_message(path.read_bytes(), None, memory):
            if not isinstance(record, Rejected):
                ids[record.id] += 1
    return ids


def control_id(raw: bytes) -> str:
    return raw.decode("utf-8-sig").split("\r", 1)[0].split("\n", 1)[0].split("|")[9]


OVERSIZE = sample("SIU-S12-01.hl7").rstrip(b"\r\n") + b"\rOBX|1|TX|||" + b"x" * (MAX + 10)
UNSUPPORTED = sample("ADT-A04-01.hl7").replace(b"ADT^A04^ADT_A04", b"ADT^A99")
TRUNCATED = sample("SIU-S12-01.hl7")[:200]  # cut before SCH-2: no appointment id


def test_concurrent_clients_every_message_accounted_for(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with listening(tmp_path, max_message_bytes=MAX) as running:

            async def samples_one_by_one(pieces: int) -> list[tuple[str, Ack]]:
                client = await Client.connect(running.port)
                acks = [
                    (control_id(p.read_bytes()), await client.exchange(p.read_bytes(), pieces))
                    for p in SAMPLES
                ]
                await client.close()
                return acks

            async def malformed() -> list[Ack]:
                client = await Client.connect(running.port)
                acks = [
                    await client.exchange(TRUNCATED),
                    await client.exchange(b"hello, this is not HL7"),
                    await client.exchange(OVERSIZE, pieces=5),
                    await client.exchange(UNSUPPORTED),
                ]
                await client.close()
                return acks

            async def pipelined() -> list[Ack]:
                # Several frames in one write, junk between two of them, then all ACKs.
                client = await Client.connect(running.port)
                data = (
                    frame(sample("ORM-O01-01.hl7"))
                    + b"\r\nJUNK BETWEEN FRAMES\r\n"
                    + frame(sample("SIU-S26-01.hl7"))
                    + frame(sample("MDM-T02-01.hl7"))
                )
                await client.send(data)
                acks = [await client.ack() for _ in range(3)]
                await client.close()
                return acks

            whole, split, bad, piped = await asyncio.gather(
                samples_one_by_one(1), samples_one_by_one(7), malformed(), pipelined()
            )
            # Each open client was counted while it was open; all are closed at stop.
            assert running.metric("carewatch_mllp_connections_total") == 4

        # -- ACKs: one per message, right code, MSA-2 = the message's MSH-10 ----------
        for sent_id, ack in whole + split:
            assert (ack.code, ack.control_id) == ("AA", sent_id)
            assert ack.msh[8].startswith("ACK^") and ack.msh[8].endswith("^ACK")
        no_event = [a for _, a in whole if a.text.startswith("received; no care event")]
        assert len(no_event) == 2  # the MDM with an unmapped document type, the S14

        truncated, not_hl7, oversize, unsupported = bad
        assert (truncated.code, truncated.control_id) == ("AE", "MSG00012")
        assert "no appointment id" in truncated.text and truncated.err is not None
        assert (not_hl7.code, not_hl7.control_id) == ("AR", "")
        assert (oversize.code, oversize.control_id) == ("AR", "MSG00012")
        assert oversize.err is not None and oversize.err[5] == "too-large"
        # MSA-3 is escaped HL7 text: the component separator travels as \S\.
        assert unsupported.code == "AE"
        assert unsupported.text == "unsupported message type ADT\\S\\A99"
        assert [(a.code, a.control_id) for a in piped] == [
            ("AA", "MSG00018"),
            ("AA", "MSG00026"),
            ("AA", "PS1-20080131160038"),
        ]

        # -- accepted events are in the output file, fields mapped ------------------
        events = running.events()
        # Every sample was sent twice (whole and split), the ORM and S26 a third time:
        # at least once delivery, the ids deduplicate downstream.
        extra = [p for p in SAMPLES if p.name in ("ORM-O01-01.hl7", "SIU-S26-01.hl7")]
        once = expected_ids(SAMPLES)
        assert Counter(e["id"] for e in events) == once + once + expected_ids(extra)
        booked = next(e for e in events if e["id"] == "MSG00012:appointment.booked:1")
        assert booked["type"] == "appointment.booked" and booked["patient"] == "PATID1234"
        assert booked["refs"]["appointment"] == "36996"
        assert booked["attrs"]["start"] == "2021-09-24T07:15:00+00:00"
        assert booked["source"] == {
            "format": "hl7v2",
            "message_id": "MSG00012",
            "message_type": "SIU^S12",
        }
        result = next(e for e in events if e["id"] == "182:result.reported:2")
        assert result["refs"] == {"order": "855238581"} and result["attrs"]["test"] == "26464-8"

        # -- rejected messages are in the dead letter with a reason --------------------
        dead = running.dead()
        by_reason = {d["kind"]: d for d in dead if d["location"] != "between messages"}
        assert sorted(d["kind"] for d in dead) == [
            "invalid",  # truncated
            "invalid",  # not HL7
            "invalid",  # the junk between frames
            "too-large",
            "unsupported",
        ]
        assert all(d["reason"] and d["peer"].startswith("127.0.0.1:") for d in dead)
        assert by_reason["unsupported"]["ack"] == "AE"
        assert base64.b64decode(by_reason["unsupported"]["raw_base64"]) == UNSUPPORTED
        big = by_reason["too-large"]
        assert big["ack"] == "AR" and big["size"] == len(OVERSIZE) and big["raw_truncated"]
        assert f"{len(OVERSIZE):,} bytes" in big["reason"]
        [junk] = [d for d in dead if d["location"] == "between messages"]
        assert junk["excerpt"] == "JUNK BETWEEN FRAMES\r\n" and "ack" not in junk
        not_hl7_dead = next(d for d in dead if d["reason"].startswith("not an HL7"))
        assert base64.b64decode(not_hl7_dead["raw_base64"]) == b"hello, this is not HL7"

        # -- the counts add up ----------------------------------------------------------
        m = running.metric
        sent = 2 * len(SAMPLES) + 4 + 3
        assert m("carewatch_mllp_messages_received_total") == sent
        accepted = m("carewatch_mllp_messages_accepted_total")
        rejected = {
            k: m("carewatch_mllp_messages_rejected_total", kind=k)
            for k in ("invalid", "unsupported", "too-large")
        }
        assert accepted == 2 * len(SAMPLES) + 3
        assert rejected == {"invalid": 2, "unsupported": 1, "too-large": 1}
        assert m("carewatch_mllp_messages_unanswered_total") == 0
        assert accepted + sum(rejected.values()) == sent
        assert m("carewatch_mllp_messages_without_event_total") == 2 * 2 + 1
        assert m("carewatch_mllp_events_handed_on_total") == len(events)
        assert m("carewatch_mllp_junk_bytes_total") == len(b"JUNK BETWEEN FRAMES\r\n")
        assert m("carewatch_mllp_connections_open") == 0

    asyncio.run(scenario())


def test_clients_vanishing_mid_message_do_not_hurt_the_others(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with listening(tmp_path) as running:
            steady = await Client.connect(running.port)
            assert (await steady.exchange(sample("SIU-S12-01.hl7"))).code == "AA"

            leaver = await Client.connect(running.port)
            leaver_port = leaver.writer.get_extra_info("sockname")[1]
            assert (await leaver.exchange(sample("LAB-ORM-1.hl7"))).code == "AA"
            half = frame(sample("ORM-O01-01.hl7"))[:150]
            await leaver.send(half)
            await leaver.close()  # gone in the middle of a message

            crasher = await Client.connect(running.port)
            await crasher.send(frame(sample("OML-O21-01.hl7"))[:300])
            crasher.writer.transport.abort()  # gone with a reset, mid-frame

            # The steady client goes on; a new client is served too.
            assert (await steady.exchange(sample("SIU-S15-01.hl7"))).code == "AA"
            newcomer = await Client.connect(running.port)
            assert (await newcomer.exchange(sample("SIU-S26-01.hl7"))).control_id == "MSG00026"
            await steady.close()
            await newcomer.close()

        ids = {e["id"] for e in running.events()}
        assert ids == {
            "MSG00012:appointment.booked:1",
            "MSGID20060307110114:order.placed:1",
            "MSG00015:appointment.cancelled:1",
            "MSG00026:appointment.missed:1",
        }
        # The half message is recorded (it could not be answered; the sender resends).
        [cut] = [d for d in running.dead() if d["peer"] == f"127.0.0.1:{leaver_port}"]
        assert cut["location"] == "message 2" and "ack" not in cut
        assert cut["reason"].startswith("connection ended") and cut["size"] == len(half) - 1
        assert base64.b64decode(cut["raw_base64"]) == half[1:]
        assert running.metric("carewatch_mllp_incomplete_messages_total") >= 1
        assert running.metric("carewatch_mllp_messages_received_total") == 4
        assert running.metric("carewatch_mllp_messages_accepted_total") == 4

    asyncio.run(scenario())


def test_an_idle_connection_is_closed_after_the_timeout(tmp_path: Path) -> None:
    # Small, but not so small that a busy test machine could starve a client between
    # connecting and sending: the test waits for the closing, it does not time it.
    async def scenario() -> None:
        async with listening(tmp_path, idle_timeout=0.5) as running:
            silent = await Client.connect(running.port)
            assert await silent.at_eof()  # closed by the listener, without our doing

            halfway = await Client.connect(running.port)
            await halfway.send(frame(sample("SIU-S13-01.hl7"))[:100])
            assert await halfway.at_eof()
            assert running.metric("carewatch_mllp_idle_timeouts_total") == 2

            # The listener itself is fine: a client that talks is served.
            talker = await Client.connect(running.port)
            assert (await talker.exchange(sample("SIU-S13-01.hl7"))).code == "AA"
            await talker.close()
        [cut] = running.dead()
        assert "idle for 0.5 s" in cut["reason"] and cut["size"] == 99
        assert [e["id"] for e in running.events()] == ["MSG00013:appointment.rescheduled:1"]

    asyncio.run(scenario())


def test_when_the_handoff_fails_the_sender_gets_ae_and_the_resend_is_accepted(
    tmp_path: Path,
) -> None:
    handoff = MemoryHandoff()

    async def scenario() -> None:
        async with listening(tmp_path, handoff=handoff) as running:
            handoff.fail = True
            client = await Client.connect(running.port)
            # Two messages in one write: neither can be handed on; each is answered AE
            # (send it again) and kept whole in the dead letter, and the connection stays.
            await client.send(frame(sample("SIU-S12-01.hl7")) + frame(sample("SIU-S15-01.hl7")))
            first, second = await client.ack(), await client.ack()
            assert (first.code, second.code) == ("AE", "AE")
            assert first.control_id == "MSG00012" and "send the message again" in first.text
            assert first.err is not None and first.err[3].startswith("207")
            m = running.metric
            assert m("carewatch_mllp_messages_rejected_total", kind="undelivered") == 2
            assert m("carewatch_mllp_messages_unanswered_total") == 0

            handoff.fail = False
            assert (await client.exchange(sample("SIU-S12-01.hl7"))).code == "AA"
            await client.close()
            assert m("carewatch_mllp_messages_accepted_total") == 1
        assert [e.id for e in handoff.events] == ["MSG00012:appointment.booked:1"]
        assert handoff.closed
        kept = running.dead()
        assert [(d["location"], d["kind"], d["ack"]) for d in kept] == [
            ("message 1", "undelivered", "AE"),
            ("message 2", "undelivered", "AE"),
        ]
        assert base64.b64decode(kept[0]["raw_base64"]) == sample("SIU-S12-01.hl7")

    asyncio.run(scenario())


def test_when_the_dead_letter_fails_too_nothing_is_acknowledged(tmp_path: Path) -> None:
    handoff = MemoryHandoff()

    async def scenario() -> None:
        async with listening(tmp_path, handoff=handoff) as running:
            handoff.fail = True
            running.listener.dead_letter.write = _failing_write  # type: ignore[method-assign]
            client = await Client.connect(running.port)
            await client.send(frame(sample("SIU-S12-01.hl7")))
            assert await client.at_eof()  # no ACK at all: the sender keeps the message
            assert running.metric("carewatch_mllp_messages_unanswered_total") == 1

    asyncio.run(scenario())


async def _failing_write(records: object) -> None:
    raise AppendError("disk full")


class GatedHandoff(MemoryHandoff):
    """Holds every delivery until ``release`` is set, to have a message in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def deliver(self, events: object) -> None:  # type: ignore[override]
        self.entered.set()
        await self.release.wait()
        await super().deliver(events)  # type: ignore[arg-type]


def test_shutdown_finishes_messages_in_flight_and_closes_idle_connections(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        handoff = GatedHandoff()
        async with listening(tmp_path, handoff=handoff) as running:
            idle = await Client.connect(running.port)
            busy = await Client.connect(running.port)
            await busy.send(frame(sample("SIU-S12-01.hl7")))
            await asyncio.wait_for(handoff.entered.wait(), 20)

            stopping = asyncio.create_task(running.listener.stop())
            assert await idle.at_eof()  # an idle connection is closed at once
            handoff.release.set()  # the message in flight completes...
            ack = await busy.ack()
            assert (ack.code, ack.control_id) == ("AA", "MSG00012")  # ...and is answered
            assert await busy.at_eof()
            await asyncio.wait_for(stopping, 20)

            assert handoff.closed and [e.id for e in handoff.events] == [
                "MSG00012:appointment.booked:1"
            ]
            try:
                await Client.connect(running.port)
            except OSError:
                pass  # refused: the listener no longer accepts connections
            else:
                raise AssertionError("a stopped listener accepted a connection")

    asyncio.run(scenario())


def test_partly_rejected_and_no_event_messages(tmp_path: Path) -> None:
    # The second OBR of this ORU has no order id: one result is accepted, one is not.
    partial = sample("LAB-ORU-1.hl7").replace(b"OBR|1|855238581|890775544|", b"OBR|1|||")

    async def scenario() -> None:
        async with listening(tmp_path, keep_no_event=True) as running:
            client = await Client.connect(running.port)
            ack = await client.exchange(partial)
            assert (ack.code, ack.control_id) == ("AA", "182")
            assert ack.text == "accepted; 1 of 2 parts rejected"
            assert ack.err is not None and ack.err[4] == "W" and ack.err[5] == "invalid"
            no_event = await client.exchange(sample("MDM-T02-01.hl7"))
            assert no_event.code == "AA" and no_event.err is None
            await client.close()
            assert running.metric("carewatch_mllp_rejected_parts_total", kind="invalid") == 1
            assert running.metric("carewatch_mllp_messages_without_event_total") == 1

        assert [e["id"] for e in running.events()] == ["182:result.reported:1"]
        part, kept = running.dead()
        assert (part["kind"], part["location"], part["ack"]) == ("invalid", "message 1 OBR 2", "AA")
        assert "no order id" in part["reason"]
        assert (kept["kind"], kept["ack"]) == ("no-event", "AA")  # kept: --keep-no-event

    asyncio.run(scenario())


def test_garbage_in_any_shape_leaves_the_listener_serving(tmp_path: Path) -> None:
    import random

    rng = random.Random(20260302)
    pieces = [b"\x0b", b"\x1c", b"\r", b"MSH|^~\\&|", b"|", b"\x00\xff", b"PID|1", b"\n"]

    async def scenario() -> None:
        async with listening(tmp_path, max_message_bytes=4096) as running:
            for _ in range(20):
                noisy = await Client.connect(running.port)
                blob = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 400)))
                blob += bytes(rng.randrange(256) for _ in range(rng.randint(0, 3000)))
                await noisy.send(blob, pieces=rng.randint(1, 9))
                await noisy.close()  # without reading a single ACK
            client = await Client.connect(running.port)
            ack = await client.exchange(sample("SIU-S26-01.hl7"))
            assert (ack.code, ack.control_id) == ("AA", "MSG00026")
            await client.close()

        m = running.metric
        answered = m("carewatch_mllp_messages_accepted_total") + sum(
            m("carewatch_mllp_messages_rejected_total", kind=k)
            for k in ("invalid", "unsupported", "too-large")
        )
        # Every frame was answered (a client gone before its ACK still got it sent).
        assert answered + m("carewatch_mllp_messages_unanswered_total") == m(
            "carewatch_mllp_messages_received_total"
        )
        assert "MSG00026:appointment.missed:1" in {e["id"] for e in running.events()}

    asyncio.run(scenario())


def test_a_bug_costs_one_connection_not_the_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from streams.mllp import server

    real_decide = server.decide

    def buggy(records: list[object]) -> object:
        missed = [r for r in records if getattr(r, "type", "") == "appointment.missed"]
        if missed:
            raise KeyError(missed[0].patient)  # type: ignore[attr-defined] # quotes the message
        return real_decide(records)  # type: ignore[arg-type]

    monkeypatch.setattr(server, "decide", buggy)

    async def scenario() -> None:
        async with listening(tmp_path) as running:
            unlucky = await Client.connect(running.port)
            await unlucky.send(frame(sample("SIU-S26-01.hl7")))
            assert await unlucky.at_eof()
            fine = await Client.connect(running.port)
            assert (await fine.exchange(sample("SIU-S12-01.hl7"))).code == "AA"
            await fine.close()

    with caplog.at_level("DEBUG", logger="carewatch.mllp"):
        asyncio.run(scenario())
    assert "internal error KeyError" in caplog.text
    assert "PATID1234" not in caplog.text  # the exception's text is not logged
