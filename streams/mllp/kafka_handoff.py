"""Handing accepted events to a Kafka topic (optional; ``--kafka-bootstrap``).

Events are the canonical JSON object, keyed by patient (else session, else event id) so
that one patient's events stay in order on one partition, as the Kafka worker expects.
The producer is kafka-python's, with ``acks="all"`` and idempotence on: ``deliver``
waits for every send to be acknowledged by the in-sync replicas before the listener may
answer AA, and a retry inside the producer never writes a record twice.

A producer whose sends failed is replaced by a new one before the next delivery. After a
broker restart under traffic, kafka-python's idempotent producer can stay stuck for
minutes once a batch has expired (every later send times out while other producers
publish fine); a new producer, with a new producer id, publishes at once.

Making a producer waits for the brokers (up to the timeout) when they are away, so one
delivery at a time makes it; deliveries meanwhile fail at once (the listener answers AE)
rather than wait their turn, and no lock is held while connecting, so ``close`` never
waits for it. Sends run on a pool of their own, as large as the number of connections,
so every connection waits for Kafka at the same time, never in turn behind the others.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import orjson

from detectors.errors import RuntimeFault
from detectors.events import Event
from streams.mllp.handoff import HandoffError

__all__ = ["DEFAULT_TOPIC", "KafkaHandoff", "event_key"]

log = logging.getLogger("carewatch.mllp")

#: Longest wait for a producer being discarded or closed to send what it holds (seconds).
_CLOSE_SECONDS = 5.0

#: The events topic the Kafka worker reads (``CAREWATCH_TOPIC_EVENTS`` overrides it).
DEFAULT_TOPIC = "carewatch.events"

#: Deliveries waiting on Kafka at once, by default (the listener's default connections).
DEFAULT_SENDERS = 100


class _SendResult(Protocol):
    def get(self, timeout: float | None = None) -> Any: ...


class Producer(Protocol):
    """The part of ``kafka.KafkaProducer`` the handoff uses (a fake in tests)."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> _SendResult:
        """Queue one record; the result's ``get`` waits for the broker's answer."""
        ...

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Flush and release the connections."""
        ...


def event_key(event: Event) -> bytes:
    """The record key: the patient, else the session, else the event id."""
    return (event.patient or event.refs.get("session") or event.id).encode()


class KafkaHandoff:
    """Produces events to ``topic`` through ``producer``; ``timeout`` (seconds) bounds
    the wait for the brokers' acknowledgement of one message's events. With
    ``reconnect`` (a function making a new producer, raising ``RuntimeFault`` when it
    cannot), a producer whose sends failed is closed and replaced by a new one for the
    next delivery; while one delivery makes it, the others fail at once. ``senders``:
    how many deliveries may wait on Kafka at once (one thread each; at least the
    listener's maximum number of connections)."""

    def __init__(
        self,
        producer: Producer,
        topic: str = DEFAULT_TOPIC,
        timeout: float = 30.0,
        *,
        reconnect: Callable[[], Producer] | None = None,
        senders: int = DEFAULT_SENDERS,
    ) -> None:
        # The lock guards the four fields below; it is held only to read or swap them,
        # never while connecting or sending, so the event loop may take it (close).
        self._lock = threading.Lock()
        self._producer: Producer | None = producer
        self._generation = 0
        self._connecting = False
        self._closed = False
        self._reconnect = reconnect
        self._senders = ThreadPoolExecutor(
            max(1, senders), thread_name_prefix="carewatch-kafka-send"
        )
        self.topic = topic
        self.timeout = timeout
        self.description = f"Kafka topic {topic}"

    @classmethod
    def connect(
        cls,
        bootstrap: str,
        topic: str = DEFAULT_TOPIC,
        *,
        timeout: float = 30.0,
        client_id: str = "carewatch-mllp",
        security: Mapping[str, Any] | None = None,
        senders: int = DEFAULT_SENDERS,
    ) -> KafkaHandoff:
        """A handoff with a new idempotent ``acks=all`` producer for ``bootstrap``
        (``host:port[,host:port...]``). ``security``: kafka-python's TLS/SASL settings
        (``security_protocol``, ``ssl_cafile``, ``sasl_mechanism``..., as
        ``KafkaConfig.kafka_python_kwargs`` gives them). ``senders``: see the class.
        Raises ``RuntimeFault`` if Kafka cannot be reached."""
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        timeout_ms = int(timeout * 1000)
        request_ms = min(timeout_ms, 30_000)
        extra: dict[str, Any] = {
            k: v for k, v in (security or {}).items() if k != "bootstrap_servers"
        }
        if "bootstrap_timeout_ms" in KafkaProducer.DEFAULT_CONFIG:  # kafka-python 2.1+
            extra["bootstrap_timeout_ms"] = timeout_ms

        def producer() -> Producer:
            try:
                made: Producer = KafkaProducer(
                    bootstrap_servers=[b.strip() for b in bootstrap.split(",") if b.strip()],
                    client_id=client_id,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,  # a few ms lets concurrent connections share a request
                    max_block_ms=timeout_ms,
                    request_timeout_ms=request_ms,
                    # The producer must be allowed one whole request (plus the linger).
                    delivery_timeout_ms=max(timeout_ms, request_ms + 2),
                    **extra,
                )
            except KafkaError as exc:
                raise RuntimeFault(f"cannot reach Kafka at {bootstrap}: {exc}") from None
            return made

        return cls(producer(), topic, timeout, reconnect=producer, senders=senders)

    async def deliver(self, events: Sequence[Event]) -> None:
        """Send ``events`` and wait until every one is acknowledged; raises
        ``HandoffError`` when Kafka refuses or does not answer within ``timeout``, at
        once while another delivery is making a new producer, and once closed."""
        if not events:
            return
        if self._closed:
            raise HandoffError("the Kafka handoff is closed")
        await asyncio.get_running_loop().run_in_executor(self._senders, self._send, events)

    def _send(self, events: Sequence[Event]) -> None:
        # kafka-python's producer is thread-safe; its futures block, hence the thread.
        producer, generation = self._current()
        try:
            futures = [
                producer.send(self.topic, key=event_key(e), value=orjson.dumps(e.to_dict()))
                for e in events
            ]
            for future in futures:
                future.get(timeout=self.timeout)
        except Exception as exc:  # any client error means: not durable, no AA
            self._discard(generation)
            raise HandoffError(
                f"Kafka did not take the events: {type(exc).__name__}: {exc}"
            ) from None

    def _current(self) -> tuple[Producer, int]:
        """The producer to send with: a new one if the last was discarded, made by this
        delivery unless another is making it already (then ``HandoffError`` at once)."""
        with self._lock:
            if self._producer is not None:
                return self._producer, self._generation
            if self._closed:
                raise HandoffError("the Kafka handoff is closed")
            if self._connecting:
                raise HandoffError("Kafka is being connected again after a failure")
            assert self._reconnect is not None
            self._connecting = True
        try:
            made = self._reconnect()
        except Exception as exc:  # RuntimeFault: Kafka unreachable; anything else alike
            with self._lock:
                self._connecting = False
            text = str(exc) if isinstance(exc, RuntimeFault) else type(exc).__name__
            raise HandoffError(text) from None
        with self._lock:
            self._connecting = False
            closed = self._closed
            if not closed:
                self._producer = made
                self._generation += 1
                generation = self._generation
        if closed:  # closed while connecting: this producer is not wanted
            _close_quietly(made, 0)
            raise HandoffError("the Kafka handoff is closed")
        log.info("Kafka handoff: new producer connected")
        return made, generation

    def _discard(self, generation: int) -> None:
        """Drop the producer of ``generation`` after a failed send (once, whichever
        sender saw the failure first); the next delivery makes a new one."""
        if self._reconnect is None:
            return
        with self._lock:
            if self._generation != generation or self._producer is None:
                return
            producer, self._producer = self._producer, None
        log.warning("Kafka handoff: discarding a producer whose sends failed")
        _close_quietly(producer, 0)

    async def close(self) -> None:
        """Flush what is queued (at most ``timeout``, and 5 s at most) and close. Does
        not wait for a producer being made: that one is closed once made."""
        with self._lock:
            self._closed = True
            producer, self._producer = self._producer, None
        # Deliveries still waiting end within ``timeout`` (queued ones find the handoff
        # closed); none is waited for here.
        self._senders.shutdown(wait=False)
        if producer is not None:
            await asyncio.to_thread(_close_quietly, producer, min(self.timeout, _CLOSE_SECONDS))


def _close_quietly(producer: Producer, timeout: float) -> None:
    # Records it could not send were never acknowledged AA: the sender has them still.
    try:
        producer.close(timeout)
    except Exception as exc:
        log.info("Kafka handoff: the producer closed with %s", type(exc).__name__)
