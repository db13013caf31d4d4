"""The MLLP listener: an asyncio TCP server that turns each HL7 v2 message it receives
into canonical events, hands them on durably, and only then answers AA.

One connection is served by one task, message after message in the order received
(MLLP senders wait for each ACK, so this is their order too); connections are served
concurrently. For each complete message:

1. ``convert_message`` with the site mapping and one ``AdapterMemory`` shared by all
   connections (an S13 on one connection knows the start an S12 on another booked);
2. ``decide`` picks AA/AE/AR (see ``streams.mllp.decide``);
3. the events go to the handoff and the rejected parts to the dead letter, both durable
   before anything is answered; if the handoff fails the message is answered AE
   ("send it again") and kept whole in the dead letter; if the dead letter fails, the
   message gets no ACK and the connection is closed, so the sender sends it again;
4. the ACK is written.

Nothing a client sends or fails to send can stop the listener: bad bytes become
dead-letter records, a client vanishing mid-message costs only that message (recorded
as incomplete), and a connection that completes no message within the idle timeout, or
leaves bytes outside a whole message for longer than the frame timeout, is closed. Logs
carry peer addresses and counts, never message content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry

from detectors.errors import ConfigError
from streams.adapters import AdapterMemory, SiteMapping, convert_message, default_mapping
from streams.deadletter import INVALID, NO_EVENT, TOO_LARGE, UNDELIVERED, Rejected, excerpt
from streams.mllp.ack import MessageHeader, build_ack, read_header
from streams.mllp.appender import AppendError
from streams.mllp.dead_letter import DeadLetterFile, dead_letter_record
from streams.mllp.decide import NOT_HL7, TRUNCATED, Decision, decide, refuse, undelivered
from streams.mllp.framing import DEFAULT_MAX_SIZE, Frame, FrameDecoder, Item, Junk, Oversized, frame
from streams.mllp.handoff import Handoff, HandoffError
from streams.mllp.memory_file import MemoryFile
from streams.mllp.metrics import MllpMetrics

__all__ = ["DEFAULT_PORT", "ListenerSettings", "MllpListener"]

log = logging.getLogger("carewatch.mllp")

#: The port IANA registered for HL7 over MLLP.
DEFAULT_PORT = 2575
_READ_BYTES = 65536
#: Longest a connection refused for the maximum is read before it is closed (seconds).
_REFUSAL_LINGER = 2.0
#: Most refused connections lingering at once; beyond, they are closed at once (reset).
_REFUSALS_LINGERING = 32


@dataclass(frozen=True)
class ListenerSettings:
    """How the listener behaves. Durations are seconds; sizes bytes.

    ``max_message_bytes``: largest message accepted (larger ones are answered AR and
    dead-lettered with their first 4 KiB). ``idle_timeout``: a connection that completes
    no message for this long (from its start or its last message) is closed; also bounds
    each read within a message and the writing of an ACK. ``frame_timeout``: a message
    must arrive whole within this long of its first byte, or of the first byte outside a
    message (whitespace included, bar the CR/LF after a frame), or the connection is
    closed (a client trickling bytes or blank lines cannot hold it forever).
    ``max_connections``: connections beyond this many open ones are closed at once.
    ``tls``: serve TLS with this context (``streams.mllp.tls.server_tls``); plain TCP
    when ``None``. The TLS handshake must finish within the idle timeout (at most 60 s).
    ``shutdown_grace``: how long a shutdown waits for messages in flight before it
    cancels them. ``keep_no_event``: also write messages that carry no care event to
    the dead letter (off: they are only counted, being ordinary traffic such as every
    ADT^A08 of a living patient).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_message_bytes: int = DEFAULT_MAX_SIZE
    idle_timeout: float = 300.0
    shutdown_grace: float = 30.0
    keep_no_event: bool = False
    frame_timeout: float = 60.0
    max_connections: int = 100
    tls: ssl.SSLContext | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port (0-65535; 0 picks a free one)")
        if self.max_message_bytes < 1024:
            raise ConfigError(
                f"maximum message size {self.max_message_bytes} bytes is too small "
                "for any HL7 message; use at least 1024"
            )
        if self.idle_timeout <= 0:
            raise ConfigError("the idle timeout must be more than 0 seconds")
        if self.shutdown_grace < 0:
            raise ConfigError("the shutdown grace period cannot be negative")
        if self.frame_timeout <= 0:
            raise ConfigError("the frame timeout must be more than 0 seconds")
        if self.max_connections < 1:
            raise ConfigError("the maximum number of connections must be at least 1")


class _Connection:
    """One client connection's state and counts (for its log line)."""

    __slots__ = ("accepted", "idle", "messages", "origin", "peer", "rejected", "writer")

    def __init__(self, peer: str, writer: asyncio.StreamWriter) -> None:
        self.peer = peer
        self.origin = f"mllp:{peer}"
        self.writer = writer
        self.idle = False  # waiting for data, so it may be closed at once on shutdown
        self.messages = 0
        self.accepted = 0
        self.rejected = 0


class MllpListener:
    """Serves MLLP on ``settings.host``/``settings.port``.

    ``handoff`` takes the accepted events, ``dead_letter`` the rejected messages;
    both are closed by ``stop``. ``mapping`` defaults to the packaged site mapping and
    ``memory`` to a new ``AdapterMemory``; with ``memory_file`` the memory is that
    file's, each message's changes to it are on disk before its ACK, and ``stop``
    closes it. ``metrics`` defaults to a private registry.
    ``clock`` returns epoch seconds (ACK times, ``received_at``); ``control_ids``
    returns the next ACK control id (MSH-10).
    """

    def __init__(
        self,
        settings: ListenerSettings,
        handoff: Handoff,
        dead_letter: DeadLetterFile,
        *,
        mapping: SiteMapping | None = None,
        memory: AdapterMemory | None = None,
        metrics: MllpMetrics | None = None,
        memory_file: MemoryFile | None = None,
        clock: Callable[[], float] = time.time,
        control_ids: Callable[[], str] | None = None,
    ) -> None:
        self.settings = settings
        self.handoff = handoff
        self.dead_letter = dead_letter
        self.mapping = mapping or default_mapping()
        self.memory_file = memory_file
        if memory_file is not None:
            memory = memory_file.memory
        self.memory = memory if memory is not None else AdapterMemory()
        self.metrics = metrics or MllpMetrics(CollectorRegistry())
        self._clock = clock
        self._control_ids = control_ids or (lambda: uuid.uuid4().hex[:20])
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refusing = 0  # refused connections being closed (see _refuse)
        self._stopping = False
        self._stopped = asyncio.Event()
        # Converting a message is CPU work (a result of thousands of segments takes a
        # few tenths of a second): done on one thread of its own, so the event loop goes
        # on serving the other connections meanwhile, and conversions, which share the
        # adapter memory, still happen one at a time in the order the messages came.
        self._converter = ThreadPoolExecutor(1, thread_name_prefix="carewatch-mllp-convert")

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) listened on (the real port, also for port 0), once started."""
        if self._address is None:
            raise RuntimeError("the listener is not started")
        return self._address

    async def start(self) -> tuple[str, int]:
        """Bind and start accepting connections; returns ``address``. Raises
        ``ConfigError`` when the address cannot be listened on."""
        try:
            self._server = await asyncio.start_server(
                self._on_connection,
                self.settings.host,
                self.settings.port,
                ssl=self.settings.tls,
                ssl_handshake_timeout=(
                    min(self.settings.idle_timeout, 60.0) if self.settings.tls else None
                ),
            )
        except OSError as exc:
            where = f"{self.settings.host}:{self.settings.port}"
            raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        host, port = self._server.sockets[0].getsockname()[:2]
        self._address = (host, port)
        log.info(
            "listening for MLLP%s on %s:%d; events to %s",
            " over TLS" if self.settings.tls else "",
            host,
            port,
            self.handoff.description,
        )
        return host, port

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, let each connection finish the messages it
        has received (at most ``shutdown_grace`` seconds), then close the handoff and
        the dead letter. Safe to call more than once."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            if conn.idle:
                # Waiting for data: closing ends its read at once. Busy connections stop
                # by themselves after the messages already received.
                conn.writer.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.shutdown_grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "shutdown: %d connections cancelled after the grace period", len(pending)
                )
                await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._converter.shutdown(wait=True)
        try:
            await self.handoff.close()
        finally:
            try:
                await self.dead_letter.close()
            finally:
                if self.memory_file is not None:
                    await asyncio.to_thread(self.memory_file.close)
                self._stopped.set()
                log.info("MLLP listener stopped")

    async def __aenter__(self) -> MllpListener:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- one connection -------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        conn = _Connection(_peer_name(writer), writer)
        if self._stopping:
            writer.close()
            return
        if len(self._connections) >= self.settings.max_connections:
            await self._refuse(conn, reader)
            return
        self._connections.add(conn)
        self.metrics.connections.inc()
        self.metrics.connections_open.inc()
        log.info("connection from %s", conn.peer)
        ending = "closed by the client"
        try:
            ending = await self._serve(conn, reader)
        except Exception as exc:  # a bug must cost one connection, never the listener
            ending = f"internal error {type(exc).__name__}"
            log.error("connection from %s: internal error %s", conn.peer, type(exc).__name__)
            # Where it happened, without the exception's text: that may quote the message.
            log.debug("internal error at:\n%s", "".join(traceback.format_tb(exc.__traceback__)))
        finally:
            self._connections.discard(conn)
            self.metrics.connections_open.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            log.info(
                "connection from %s ended (%s): %d messages, %d accepted, %d rejected",
                conn.peer,
                ending,
                conn.messages,
                conn.accepted,
                conn.rejected,
            )

    async def _refuse(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        """Close a connection over the maximum cleanly: end our side, and read (and drop)
        what the client sent until it closes too, for at most ``_REFUSAL_LINGER``
        seconds. Closing a socket with unread data resets it, and the client would see
        a reset rather than a refusal. In a flood (``_REFUSALS_LINGERING`` refused
        connections lingering already) a connection is closed at once."""
        self.metrics.connections_refused.inc()
        log.warning(
            "connection from %s refused: %d connections open already (the maximum)",
            conn.peer,
            len(self._connections),
        )
        writer = conn.writer
        if self._refusing >= _REFUSALS_LINGERING:
            writer.transport.abort()
            return
        self._refusing += 1
        try:
            if writer.can_write_eof():
                writer.write_eof()
            until = time.monotonic() + min(_REFUSAL_LINGER, self.settings.idle_timeout)
            while (wait := until - time.monotonic()) > 0:
                if not await asyncio.wait_for(reader.read(_READ_BYTES), wait):
                    break
        except (OSError, TimeoutError):
            pass  # gone, or lingering too long: closed all the same
        finally:
            self._refusing -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> str:
        """Serve one connection until it ends; returns why it ended.

        Two clocks bound a connection, whatever bytes it sends: with nothing pending,
        it must send a message's first byte within the idle timeout of its start or of
        the last message it completed; once any byte is pending (a message begun, junk,
        whitespace beyond a frame's CR/LF), a whole message must arrive within the frame
        timeout (and no read may take longer than the idle timeout). So a connection
        completes a message, or is closed, within idle + frame timeout."""
        decoder = FrameDecoder(self.settings.max_message_bytes)
        ending = "listener shutting down"
        idle_timeout, frame_timeout = self.settings.idle_timeout, self.settings.frame_timeout
        # Monotonic times: the last progress (connection start, last message completed)
        # and the time by which what is pending must be a whole message (None while
        # nothing is). Counting idleness from progress rather than from the last read
        # means stray bytes cannot keep a connection alive.
        progress_at = time.monotonic()
        frame_deadline: float | None = None
        while not self._stopping:
            conn.idle = True
            now = time.monotonic()
            if frame_deadline is None:
                wait = progress_at + idle_timeout - now
            else:
                wait = min(idle_timeout, frame_deadline - now)
            try:
                if wait <= 0:
                    raise TimeoutError
                data = await asyncio.wait_for(reader.read(_READ_BYTES), wait)
            except TimeoutError:
                if frame_deadline is not None and time.monotonic() >= frame_deadline:
                    self.metrics.frame_timeouts.inc()
                    if decoder.in_frame:
                        ending = f"a message not finished within {frame_timeout:g} s"
                    else:
                        ending = f"no message within {frame_timeout:g} s of bytes outside one"
                elif frame_deadline is None:
                    self.metrics.idle_closed.inc()
                    ending = f"idle for {idle_timeout:g} s (no message)"
                else:
                    self.metrics.idle_closed.inc()
                    ending = f"idle for {idle_timeout:g} s"
                break
            except OSError:
                ending = "reset by the client"
                break
            finally:
                conn.idle = False
            if not data:
                ending = "listener shutting down" if self._stopping else "closed by the client"
                break
            read_at = time.monotonic()
            items = decoder.feed(data)
            if not decoder.pending:
                frame_deadline = None
            elif frame_deadline is None or any(not isinstance(i, Junk) for i in items):
                frame_deadline = read_at + frame_timeout
            for index, item in enumerate(items):
                if not await self._on_item(conn, item):
                    # Closing: what else this read brought is left for the sender to resend.
                    await self._on_leftovers(conn, items[index + 1 :] + decoder.finish(), "closed")
                    return "closed: a message could not be acknowledged"
            if any(not isinstance(i, Junk) for i in items):
                progress_at = time.monotonic()  # answered: idleness counts from here
        await self._on_leftovers(conn, decoder.finish(), ending)
        return ending

    async def _on_item(self, conn: _Connection, item: Item) -> bool:
        """Handle one decoded item; False when the connection must be closed."""
        if isinstance(item, Junk):
            await self._on_junk(conn, item)
            return True
        conn.messages += 1
        self.metrics.received.inc()
        received_at = self._clock()
        location = f"message {conn.messages}"
        size: int | None = None
        header: MessageHeader | None
        if isinstance(item, Frame):
            raw = item.payload
            header = read_header(raw)
            if header is None:
                reason = "not an HL7 v2 message: it does not start with a usable MSH segment"
                decision = refuse(
                    Rejected(conn.origin, location, reason, excerpt(raw), INVALID), NOT_HL7
                )
            else:
                try:
                    records = await asyncio.get_running_loop().run_in_executor(
                        self._converter, partial(self._convert, raw, conn.origin, location)
                    )
                except OSError as exc:  # the memory could not be kept: no ACK
                    self.metrics.unanswered.inc()
                    log.error(
                        "message %d from %s left unanswered for the sender to resend: "
                        "the adapter memory could not be written: %s",
                        conn.messages,
                        conn.peer,
                        exc.strerror or type(exc).__name__,
                    )
                    return False
                decision = decide(records)
        elif isinstance(item, Oversized):
            raw, size = item.head, item.size
            header = read_header(raw, complete=False)
            reason = (
                f"message of {item.size:,} bytes is over the limit of "
                f"{self.settings.max_message_bytes:,} bytes"
            )
            decision = refuse(
                Rejected(conn.origin, location, reason, excerpt(raw), TOO_LARGE), TOO_LARGE
            )
        else:  # Truncated: a new start block came before this frame's end
            raw, size = item.head, item.size
            header = read_header(raw, complete=False)
            reason = "message cut off: the next message started before this one ended"
            decision = refuse(
                Rejected(conn.origin, location, reason, excerpt(raw), INVALID), TRUNCATED
            )
        return await self._answer(conn, header, decision, raw, received_at, size)

    def _convert(self, raw: bytes, origin: str, location: str) -> list[Any]:
        """Convert one message (on the converter thread) and, with a memory file, put
        what it changed in the adapter memory on disk: before its ACK, like its events."""
        records = convert_message(raw, self.mapping, self.memory, origin=origin, location=location)
        if self.memory_file is not None:
            self.memory_file.commit()
        return records

    async def _answer(
        self,
        conn: _Connection,
        header: MessageHeader | None,
        decision: Decision,
        raw: bytes,
        received_at: float,
        size: int | None,
    ) -> bool:
        dead = [
            dead_letter_record(
                r, raw, peer=conn.peer, received_at=received_at, ack=decision.code, size=size
            )
            for r in decision.rejected
            if r.kind != NO_EVENT or self.settings.keep_no_event
        ]
        # Both durable before the ACK: AA promises the events are safe, and after AE or
        # AR the sender may drop the message, so the dead letter is then its only copy.
        handed, written = await asyncio.gather(
            self._deliver(decision),
            self.dead_letter.write(dead) if dead else _nothing(),
            return_exceptions=True,
        )
        for outcome in (handed, written):
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, HandoffError | AppendError
            ):
                raise outcome
        if isinstance(handed, HandoffError) and not isinstance(written, AppendError):
            # Nothing is wrong with the message: AE asks the sender to send it again, and
            # the dead letter keeps it whole in case the sender drops AE-ed messages.
            log.error(
                "message %d from %s answered AE: its events could not be handed on: %s",
                conn.messages,
                conn.peer,
                handed,
            )
            reason = f"events not handed on ({handed}); send the message again"
            rejected = Rejected(
                conn.origin, f"message {conn.messages}", reason, excerpt(raw), UNDELIVERED
            )
            decision = undelivered(rejected)
            record = dead_letter_record(
                rejected, raw, peer=conn.peer, received_at=received_at, ack=decision.code, size=size
            )
            try:
                await self.dead_letter.write([record])
            except AppendError as exc:
                written = exc
        if isinstance(written, AppendError):
            self.metrics.unanswered.inc()
            log.error(
                "message %d from %s left unanswered for the sender to resend: %s",
                conn.messages,
                conn.peer,
                written,
            )
            return False
        self._count(conn, decision)
        ack = build_ack(
            header,
            decision.code,
            decision.text,
            error=decision.error,
            now=self._clock(),
            control_id=self._control_ids(),
        )
        charset = header.charset if header else "utf-8"
        log.debug(
            "message %d from %s: %s, %d events",
            conn.messages,
            conn.peer,
            decision.code,
            len(decision.events),
        )
        try:
            conn.writer.write(frame(ack.encode(charset, errors="replace")))
            await asyncio.wait_for(conn.writer.drain(), self.settings.idle_timeout)
        except (OSError, TimeoutError):
            log.info("client %s went away before its acknowledgement", conn.peer)
            return False
        return True

    async def _deliver(self, decision: Decision) -> None:
        if decision.events:
            await self.handoff.deliver(decision.events)

    def _count(self, conn: _Connection, decision: Decision) -> None:
        m = self.metrics
        if decision.accepted:
            conn.accepted += 1
            m.accepted.inc()
            m.events.inc(len(decision.events))
            if m.feeds is not None:
                for ev in decision.events:
                    m.feeds.observe(ev)
            if decision.kind == NO_EVENT:
                m.without_event.inc()
            for r in decision.rejected:
                if r.kind != NO_EVENT:
                    m.count_rejected_part(r.kind)
        else:
            conn.rejected += 1
            m.count_rejected(decision.kind or INVALID)

    async def _on_junk(self, conn: _Connection, junk: Junk) -> None:
        self.metrics.junk.inc(junk.size)
        reason = f"{junk.size:,} bytes outside MLLP framing (no start block before them)"
        rejected = Rejected(conn.origin, "between messages", reason, excerpt(junk.head), INVALID)
        await self._write_unanswerable(conn, rejected, junk.head, junk.size)

    async def _on_leftovers(self, conn: _Connection, items: list[Item], ending: str) -> None:
        """What was left when the connection ended: messages never finished or never
        processed (they cannot be answered; the sender will send them again), and junk.
        They are recorded in the dead letter and counted as incomplete."""
        number = conn.messages
        for item in items:
            if isinstance(item, Junk):
                await self._on_junk(conn, item)
                continue
            number += 1
            self.metrics.incomplete.inc()
            if isinstance(item, Frame):
                raw, size = item.payload, len(item.payload)
                reason = f"connection {ending} before this message was processed"
            else:
                raw, size = item.head, item.size
                reason = f"connection ended ({ending}) after {item.size:,} bytes of a message"
            rejected = Rejected(conn.origin, f"message {number}", reason, excerpt(raw), INVALID)
            await self._write_unanswerable(conn, rejected, raw, size)

    async def _write_unanswerable(
        self, conn: _Connection, rejected: Rejected, raw: bytes, size: int
    ) -> None:
        record = dead_letter_record(
            rejected, raw, peer=conn.peer, received_at=self._clock(), ack=None, size=size
        )
        try:
            await self.dead_letter.write([record])
        except AppendError as exc:
            log.error("dead letter for %s could not be written: %s", conn.peer, exc)


async def _nothing() -> None:
    return None


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer or "unknown")
