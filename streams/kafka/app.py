"""The faust shell: moves bytes between Kafka and the per-partition state objects.

Two agents. ``patients`` reads the events topic (keyed by patient) and runs a
``PatientPartition`` per assigned partition; ``sessions`` reads the internal sessions
topic (keyed by clinic session) and runs a ``SessionPartition`` per partition. Each
takes messages in batches; per partition and batch it writes one journal chunk to its
faust table's changelog and publishes what the engine decided, and only then are the
batch's messages acknowledged, so faust commits an offset only after everything the
messages caused is on the broker (at least once; repeats are filtered by the ledger).

State is rebuilt lazily: the first message of a partition this worker has no state for
tells where consumption resumes; the journal entries before that offset are replayed
with output off, later ones (journaled but never committed) are dropped.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
from faust.types import TP

from detectors.rules import Settings
from streams.kafka.config import KafkaConfig
from streams.kafka.ledger import read_published_failures
from streams.kafka.partitions import (
    JournalIncomplete,
    PartitionBase,
    PatientPartition,
    SessionPartition,
)
from streams.kafka.wire import control_kind, control_message, parse_control

__all__ = ["Runtime", "build_app"]

#: Messages per batch and the longest wait (seconds) for a batch to fill.
BATCH = 2000
BATCH_WITHIN = 0.02
#: Tries (1 s apart) to find a complete journal in the table before giving up.
RESTORE_ATTEMPTS = 30


def log(msg: str) -> None:
    """One line for the operator (stderr); never carries settings with secrets."""
    print(f"carewatch worker: {msg}", file=sys.stderr, flush=True)


class Runtime:
    """The worker's state: partitions by (topic kind, number), the faust objects."""

    def __init__(
        self, app: faust.App, config: KafkaConfig, settings: Settings, lateness: float
    ) -> None:
        self.app = app
        self.config = config
        self.settings = settings
        self.lateness = lateness
        self.states: dict[tuple[str, int], PartitionBase] = {}
        # states of revoked partitions until the rebalance says where they went
        self.parked: dict[tuple[str, int], PartitionBase] = {}
        self._refetches: dict[tuple[TP, int], int] = {}
        self._refetched_at: dict[TP, float] = {}
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        t = config.topics
        n = config.partitions
        self.events_topic = app.topic(t.events, partitions=n, **raw)
        self.sessions_topic = app.topic(t.sessions, partitions=n, internal=True, **raw)
        self.names = {
            "outcomes": t.outcomes,
            "failures": t.failures,
            "rejected": t.rejected,
            "sessions": t.sessions,
        }
        self.tables = {
            "events": app.Table("journal", partitions=n, key_type=bytes, value_type=bytes),
            "sessions": app.Table(
                "session-journal", partitions=n, key_type=bytes, value_type=bytes
            ),
        }
        self.topic_names = {"events": t.events, "sessions": t.sessions}
        self.processed = 0
        self.started = time.monotonic()
        self.on_states_changed: list[Callable[[], None]] = []

    # -- partitions

    def _new(self, kind: str, p: int) -> PartitionBase:
        if kind == "events":
            return PatientPartition(
                p,
                self.settings,
                allowed_lateness=self.lateness,
                session_partitions=self.config.partitions,
                origin=self.config.topics.events,
                horizon=self.config.journal_horizon,
            )
        return SessionPartition(
            p,
            self.settings,
            allowed_lateness=self.lateness,
            sources=self.config.partitions,
            origin=self.config.topics.sessions,
            horizon=self.config.journal_horizon,
        )

    async def _restore(self, kind: str, p: int, resume: int) -> PartitionBase:
        st = self._new(kind, p)
        prefix = f"{p:05d}."
        table = self.tables[kind]
        for attempt in range(RESTORE_ATTEMPTS):
            chunks = {}
            for k, v in list(table.data.items()):
                key = k.decode() if isinstance(k, bytes) else str(k)
                if key.startswith(prefix) and v is not None:
                    chunks[key] = v
            try:
                writes = st.restore(chunks, resume, await self._log_start(kind, p))
                break
            except JournalIncomplete as exc:
                # never carry on from a journal with holes: the outputs would be wrong
                if attempt == RESTORE_ATTEMPTS - 1:
                    log(f"{self.topic_names[kind]}[{p}]: {exc}; stopping")
                    await self.app.crash(exc)
                    raise
                log(f"{self.topic_names[kind]}[{p}]: {exc}; waiting for the table")
                await asyncio.sleep(1.0)
        await self._write_journal(kind, p, writes)
        st.ledger = await read_published_failures(self.config, p)
        log(
            f"{self.topic_names[kind]}[{p}]: state rebuilt from {len(st.entries):,} journal "
            f"entries, resuming at offset {resume:,}"
        )
        self.states[(kind, p)] = st
        for hook in self.on_states_changed:
            hook()
        return st

    def assigned(self, tps: set[TP]) -> None:
        """After a rebalance: parked states of partitions that went elsewhere are stale
        from now on (their new owner moves on); the others are ours again."""
        for key in list(self.parked):
            kind, p = key
            if TP(self.topic_names[kind], p) not in tps:
                del self.parked[key]

    def revoked(self, tps: set[TP]) -> None:
        """Forget the state of partitions this worker no longer owns. Their journal stays
        in the table: faust keeps reading the changelog from where it got to, so if a
        partition comes back, the table holds everything its other owner wrote too."""
        for tp in tps:
            kind = "events" if tp.topic == self.config.topics.events else None
            if tp.topic == self.config.topics.sessions:
                kind = "sessions"
            if kind is None:
                continue
            st = self.states.pop((kind, tp.partition), None)
            if st is not None:
                # Eager rebalancing revokes everything, then hands most partitions
                # straight back: keep the state until the new assignment is known.
                self.parked[(kind, tp.partition)] = st
                log(f"{tp.topic}[{tp.partition}]: revoked")

    # -- batches

    async def handle(self, kind: str, batch: Sequence[Any]) -> None:
        """Process a batch of faust events from the ``kind`` topic."""
        by_part: dict[int, list[Any]] = {}
        for ev in batch:
            by_part.setdefault(ev.message.partition, []).append(ev)
        assignment = self.app.consumer.assignment()
        topic = self.topic_names[kind]
        for p, events in by_part.items():
            if TP(topic, p) not in assignment and not await self._owned(TP(topic, p)):
                continue  # moved to another worker: it processes these again
            st = self.states.get((kind, p))
            first = events[0].message.offset
            if st is None:
                parked = self.parked.pop((kind, p), None)
                if parked is not None:
                    # ours again; anything faust dropped from its buffers with the
                    # revocation is fetched again by the hole check below
                    st = self.states[(kind, p)] = parked
                else:
                    st = await self._restore(kind, p, first)
            outs = st.begin_batch()
            for ev in events:
                msg = ev.message
                if msg.offset <= st.last_offset:
                    continue  # already in the state (a re-delivered fetch)
                if msg.offset > st.last_offset + 1 and not await self._refetch(
                    TP(topic, p), st.last_offset + 1
                ):
                    break  # a hole: the rest of this batch comes again after the seek
                ck = control_kind(msg.headers)
                if ck is not None:
                    try:
                        control = parse_control(ck, msg.value)
                    except ValueError:
                        st.handle_event(msg.offset, msg.key, msg.value)  # rejected
                        continue
                    st.handle_control(msg.offset, control)
                else:
                    st.handle_event(msg.offset, msg.key, msg.value)
            writes = st.end_batch()
            await self._write_journal(kind, p, writes)
            send = self.app.producer.send
            names = self.names
            for o in outs:
                await send(names[o.role], o.key, o.value, o.partition, None, list(o.headers))
            self.processed += len(events)

    async def _log_start(self, kind: str, p: int) -> int | None:
        """The first offset still in the partition (``None`` if it cannot be read)."""
        tp = TP(self.topic_names[kind], p)
        try:
            return int((await self.app.consumer.earliest_offsets(tp))[tp])
        except Exception:
            return None

    async def _refetch(self, tp: TP, offset: int) -> bool:
        """Messages from ``offset`` on were dropped before reaching us (a rebalance
        clears faust's buffers, and what was fetched before can arrive after the
        re-fetch): seek back so they come again, in order. The messages in hand are
        left unprocessed; their acknowledgement cannot be committed past the hole.
        If the hole persists over several re-fetches the worker stops (exit status
        non-zero): a restart resumes from the committed offsets and the journal, which
        is always right, whereas going on would lose the missing messages. (Our topics
        have no transaction markers, the only legitimate holes in Kafka offsets.)
        Returns False: the caller leaves the rest of its batch."""
        now = time.monotonic()
        tries = self._refetches.get((tp, offset), 0)
        if now - self._refetched_at.get(tp, 0.0) < 1.0:
            return False  # asked a moment ago: this is still the old buffer
        if tries >= 5:
            exc = RuntimeError(f"{tp.topic}[{tp.partition}]: offset {offset:,} never came back")
            log(f"{exc}; stopping so that a restart resumes from the committed offsets")
            await self.app.crash(exc)
            raise exc
        self._refetches[(tp, offset)] = tries + 1
        self._refetched_at[tp] = now
        log(f"{tp.topic}[{tp.partition}]: messages after offset {offset - 1:,} missing; refetching")
        consumer: Any = self.app.consumer
        thread = getattr(consumer, "_thread", None)
        if thread is not None and hasattr(thread, "seek_wait"):
            # on the consumer's own thread: a plain seek from here does not reliably
            # reach the fetcher that runs there
            await thread.seek_wait({tp: offset})
        else:
            await consumer.seek(tp, offset)
        return False

    async def _owned(self, tp: TP) -> bool:
        """Whether ``tp`` is (again) this worker's once a rebalance under way settles.

        A batch can hold messages fetched before a rebalance revoked their partition.
        take_events acknowledges every message of a batch, so skipping them while the
        partition comes straight back to this worker (eager rebalancing revokes
        everything first) would commit past messages nobody processed. So wait: if the
        partition is ours again, process them (the journal holds exactly what came
        before); if it went elsewhere, leave them to the new owner."""
        started = time.monotonic()
        while time.monotonic() - started < 60.0:
            if tp in self.app.consumer.assignment():
                return True
            settled = not getattr(self.app, "rebalancing", False)
            if settled and time.monotonic() - started > 2.0:
                return False
            await asyncio.sleep(0.05)
        return False

    async def _write_journal(self, kind: str, p: int, writes: dict[str, bytes | None]) -> None:
        table = self.tables[kind]
        changelog = table.changelog_topic.get_topic_name()
        send = self.app.producer.send
        for key, value in writes.items():
            k = key.encode()
            if value is None:
                table.data.pop(k, None)
            else:
                table.data[k] = value
            await send(changelog, k, value, p, None, None)

    # -- live mode

    async def tick(self) -> None:
        """Send a tick (the wall-clock time) into every events partition this worker
        owns; it queues behind any backlog, so nothing is declared from the wall clock
        while older events of that partition are still unprocessed."""
        now = time.time()
        value, headers = control_message("tick", now)
        topic = self.config.topics.events
        for tp in sorted(self.app.consumer.assignment()):
            if tp.topic == topic:
                await self.app.producer.send(topic, None, value, tp.partition, None, list(headers))

    def lag(self) -> dict[str, int]:
        """Messages not yet processed, by ``topic[partition]``."""
        out = {}
        consumer = self.app.consumer
        for (kind, p), st in sorted(self.states.items()):
            tp = TP(self.topic_names[kind], p)
            try:
                hw = consumer.highwater(tp)
            except Exception:
                continue
            if hw is not None:
                out[f"{tp.topic}[{p}]"] = max(0, hw - st.last_offset - 1)
        return out


def _credentials(config: KafkaConfig) -> Any:
    if config.security_protocol == "PLAINTEXT":
        return None
    ssl_context = config.ssl_context() if config.security_protocol in ("SSL", "SASL_SSL") else None
    if config.security_protocol == "SSL":
        return faust.SSLCredentials(ssl_context)
    mechanism = {
        "PLAIN": "PLAIN",
        "SCRAM-SHA-256": "SCRAM-SHA-256",
        "SCRAM-SHA-512": "SCRAM-SHA-512",
    }[config.sasl_mechanism or "PLAIN"]
    return faust.SASLCredentials(
        username=config.sasl_username,
        password=config.sasl_password,
        ssl_context=ssl_context,
        mechanism=mechanism,
    )


def build_app(
    config: KafkaConfig, settings: Settings, *, replay: bool, lateness: float
) -> tuple[faust.App, Runtime]:
    """The faust app and its runtime. ``replay``: no ticks, event time alone.
    ``lateness`` is the allowed lateness in seconds."""
    app = faust.App(
        config.group_id,
        broker=[f"kafka://{s}" for s in config.bootstrap.split(",")],
        broker_credentials=_credentials(config),
        store="memory://",
        datadir=config.data_dir,
        web_enabled=False,
        processing_guarantee="at_least_once",
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        table_standby_replicas=0,
        broker_commit_interval=1.0,
        # a dead worker's partitions move to the others after this long, not after
        # faust's default minute
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        stream_buffer_maxsize=20000,
        autodiscover=False,
    )
    rt = Runtime(app, config, settings, lateness)

    async def run(kind: str, stream: Any) -> None:
        try:
            async for batch in stream.take_events(BATCH, within=BATCH_WITHIN):
                await rt.handle(kind, batch)
        except Exception as exc:
            # faust would keep the worker up with a dead agent, holding its partitions
            # and processing nothing: stop instead, so that it is restarted (or its
            # partitions go to the other workers)
            log(f"stopping: {kind} agent failed: {exc!r}")
            await app.crash(exc)
            raise

    @app.agent(rt.events_topic, name="patients")
    async def patients(stream: Any) -> None:
        await run("events", stream)

    @app.agent(rt.sessions_topic, name="sessions")
    async def sessions(stream: Any) -> None:
        await run("sessions", stream)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        rt.revoked(revoked)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        rt.assigned(assigned)

    if not replay:

        @app.timer(interval=config.tick_interval)
        async def ticker() -> None:
            await rt.tick()

    @app.timer(interval=10.0)
    async def report_lag() -> None:
        lag = rt.lag()
        if lag:
            total = sum(lag.values())
            rate = rt.processed / max(1e-9, time.monotonic() - rt.started)
            log(f"lag {total:,} messages over {len(lag)} partitions; {rate:,.0f} msg/s on average")

    del patients, sessions, on_revoked, on_assigned, report_lag
    return app, rt
