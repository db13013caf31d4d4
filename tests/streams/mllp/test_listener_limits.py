"""The listener against hostile or heavy clients: TLS (and mutual TLS), a maximum number
of connections, a whole-message timeout that cuts off a client trickling bytes, and
large messages converted off the event loop."""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme

from detectors.errors import ConfigError
from streams.mllp import server as server_module
from streams.mllp.framing import frame
from streams.mllp.tls import server_tls
from tests.streams.mllp.support import WAIT, Client, listening, parse_ack, sample


def test_a_client_trickling_a_message_is_cut_off_by_the_frame_timeout(tmp_path: Path) -> None:
    # Each byte comes well within the idle timeout, so only a whole-message timeout can
    # end this connection.
    async def scenario() -> None:
        async with listening(tmp_path, idle_timeout=30.0, frame_timeout=1.0) as running:
            slow = await Client.connect(running.port)
            data = frame(sample("SIU-S13-01.hl7"))

            async def trickle() -> None:
                for i in range(len(data) - 1):  # never the end block
                    slow.writer.write(data[i : i + 1])
                    await slow.writer.drain()
                    await asyncio.sleep(0.1)

            task = asyncio.create_task(trickle())
            try:
                assert await slow.at_eof()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert running.metric("carewatch_mllp_frame_timeouts_total") == 1
            # the listener serves others as before
            other = await Client.connect(running.port)
            assert (await other.exchange(sample("SIU-S13-01.hl7"))).code == "AA"
            await other.close()
        [cut] = running.dead()
        assert "not finished within 1 s" in cut["reason"]

    asyncio.run(scenario())


async def _send_blanks(client: Client, blank: bytes) -> None:
    """Send ``blank`` again and again, as a client holding a connection with no message."""
    while True:
        client.writer.write(blank)
        await client.writer.drain()
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("blank", [b"\r", b"\n", b" "])
def test_clients_sending_only_blank_bytes_are_cut_off_and_lock_nobody_out(
    tmp_path: Path, blank: bytes
) -> None:
    # Blank bytes between frames are not junk, but not a message either: they must not
    # hold a connection open. Every byte comes well within the idle timeout, so only the
    # frame timeout (which they start) can end these connections.
    async def scenario() -> None:
        settings = {"idle_timeout": 60.0, "frame_timeout": 1.0, "max_connections": 2}
        async with listening(tmp_path, **settings) as running:
            holders = [await Client.connect(running.port) for _ in range(2)]
            # one of them sends a message first: after it, the blanks are not free either
            assert (await holders[0].exchange(sample("SIU-S13-01.hl7"))).code == "AA"
            tasks = [asyncio.create_task(_send_blanks(c, blank)) for c in holders]
            try:
                for holder in holders:
                    assert await holder.at_eof()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            assert running.metric("carewatch_mllp_frame_timeouts_total") == 2
            # the two places are free again for a real sender
            real = await Client.connect(running.port)
            assert (await real.exchange(sample("SIU-S13-01.hl7"))).code == "AA"
            await real.close()
            assert running.metric("carewatch_mllp_connections_refused_total") == 0
        assert running.dead() == []  # blanks are not data: nothing to dead-letter

    asyncio.run(scenario())


def test_a_cr_lf_after_each_message_is_no_reason_to_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with listening(tmp_path, idle_timeout=60.0, frame_timeout=0.5) as running:
            client = await Client.connect(running.port)
            for _ in range(2):
                await client.send(frame(sample("SIU-S13-01.hl7")) + b"\n")  # <FS><CR><LF>
                assert (await client.ack()).code == "AA"
            await asyncio.sleep(1.0)  # twice the frame timeout, with nothing pending
            assert (await client.exchange(sample("SIU-S13-01.hl7"))).code == "AA"
            await client.close()
            assert running.metric("carewatch_mllp_frame_timeouts_total") == 0

    asyncio.run(scenario())


def test_a_refused_connection_is_closed_cleanly_not_reset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A refused client that had sent a message must read the end of the stream, not a
    # reset (the listener reads what it sent before closing), and nothing is logged as
    # an error.
    async def scenario() -> None:
        async with listening(tmp_path, max_connections=1) as running:
            one = await Client.connect(running.port)
            assert (await one.exchange(sample("SIU-S13-01.hl7"))).code == "AA"
            for _ in range(3):
                refused = await Client.connect(running.port)
                await refused.send(frame(sample("SIU-S13-01.hl7")))
                assert await refused.reader.read() == b""  # a reset would raise here
                await refused.close()
            assert running.metric("carewatch_mllp_connections_refused_total") == 3
            await one.close()

    with caplog.at_level("DEBUG"):
        asyncio.run(scenario())
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
    assert "ConnectionResetError" not in caplog.text
    assert caplog.text.count("refused: 1 connections open already") == 3


def test_connections_over_the_maximum_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with listening(tmp_path, max_connections=2) as running:
            one = await Client.connect(running.port)
            two = await Client.connect(running.port)
            assert (await one.exchange(sample("SIU-S13-01.hl7"))).code == "AA"
            assert (await two.exchange(sample("SIU-S13-01.hl7"))).code == "AA"
            three = await Client.connect(running.port)
            assert await three.at_eof()
            assert running.metric("carewatch_mllp_connections_refused_total") == 1
            await one.close()
            for _ in range(int(WAIT / 0.05)):  # the listener notices the close
                if running.metric("carewatch_mllp_connections_open") == 1:
                    break
                await asyncio.sleep(0.05)
            four = await Client.connect(running.port)
            assert (await four.exchange(sample("SIU-S13-01.hl7"))).code == "AA"
            await two.close()
            await four.close()

    asyncio.run(scenario())


def _large_message(segments: int) -> bytes:
    head = sample("ORU-R01-01.hl7").rstrip(b"\r\n").split(b"\r")
    obx = next(s for s in head if s.startswith(b"OBX"))
    return b"\r".join(head + [obx] * segments) + b"\r"


def test_large_messages_are_converted_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    plain = server_module.convert_message

    def watched(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return plain(*args, **kwargs)

    monkeypatch.setattr(server_module, "convert_message", watched)

    async def scenario() -> None:
        loop_thread = threading.current_thread()
        async with listening(tmp_path) as running:
            client = await Client.connect(running.port)
            ack = await client.exchange(_large_message(3000))
            assert ack.code in ("AA", "AE")
            await client.close()
        assert threads and all(t is not loop_thread for t in threads)

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = tmp_path / "s.pem", tmp_path / "s.key", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    return cert_path, key_path, ca_path


async def _tls_exchange(port: int, context: ssl.SSLContext, message: bytes) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(frame(message))
        await writer.drain()
        return parse_ack(await asyncio.wait_for(reader.readuntil(b"\x1c\r"), WAIT)).code
    finally:
        writer.close()


def test_tls_serves_clients_that_trust_the_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    cert, key, ca_file = _server_files(ca, tmp_path)
    tls = server_tls(str(cert), str(key))
    client_context = ssl.create_default_context(cafile=str(ca_file))

    async def scenario() -> None:
        async with listening(tmp_path, tls=tls) as running:
            assert (
                await _tls_exchange(running.port, client_context, sample("SIU-S13-01.hl7")) == "AA"
            )
            # a plaintext client gets no acknowledgement, only a closed connection
            plain = await Client.connect(running.port)
            await plain.send(frame(sample("SIU-S13-01.hl7")))
            assert await plain.at_eof()
        assert [e["id"] for e in running.events()] == ["MSG00013:appointment.rescheduled:1"]

    asyncio.run(scenario())


def test_mutual_tls_refuses_clients_without_a_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    cert, key, ca_file = _server_files(ca, tmp_path)
    tls = server_tls(str(cert), str(key), client_ca=str(ca_file))
    anonymous = ssl.create_default_context(cafile=str(ca_file))
    known = ssl.create_default_context(cafile=str(ca_file))
    ca.issue_cert("integration-engine.example").configure_cert(known)
    stranger = ssl.create_default_context(cafile=str(ca_file))
    trustme.CA().issue_cert("intruder.example").configure_cert(stranger)

    async def scenario() -> None:
        async with listening(tmp_path, tls=tls) as running:
            assert await _tls_exchange(running.port, known, sample("SIU-S13-01.hl7")) == "AA"
            for context in (anonymous, stranger):
                with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                    await _tls_exchange(running.port, context, sample("SIU-S13-01.hl7"))
        assert len(running.events()) == 1

    asyncio.run(scenario())


def test_unusable_tls_files_are_a_one_line_error(ca: trustme.CA, tmp_path: Path) -> None:
    cert, key, _ = _server_files(ca, tmp_path)
    with pytest.raises(ConfigError, match="TLS certificate"):
        server_tls(str(tmp_path / "missing.pem"), str(key))
    with pytest.raises(ConfigError, match="TLS certificate"):
        server_tls(str(key), str(cert))
    with pytest.raises(ConfigError, match="client CA"):
        server_tls(str(cert), str(key), client_ca=str(tmp_path / "missing-ca.pem"))
