"""The faust shell: moves bytes between Kafka and the per-partition state objects.

Two agents. ``patients`` reads the events topic (keyed by patient) and runs a
``PatientPartition`` per assigned partition; ``sessions`` reads the internal sessions
topic (keyed by clinic session) and runs a ``SessionPartition`` per partition. Each
takes messages in batches; per partition and batch it writes one journal chunk to its
faust table's changelog and publishes what the engine decided, and only then are the
batch's messages acknowledged, so faust commits an offset only after everything the
messages caused is on the broker (at least once; repeats are filtered by the ledger).

State is rebuilt lazily when the first message of a partition this worker has no state
for arrives: consumption resumes at the group's committed offset (or at that message, if
it comes first); the journal entries before that offset are replayed with output off,
later ones (journaled but never committed) are dropped.

Every message must follow the previous one of its partition: what faust loses across a
rebalance is read again straight from the broker (``streams.kafka.refill``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
from faust.types import TP, Message

from detectors.rules import Settings
from streams.kafka.config import KafkaConfig
from streams.kafka.faust_seams import Consumer, IdempotentProducer, commit_now, committed_copy
from streams.kafka.ledger import read_published_failures
from streams.kafka.partitions import (
    FAR_BEHIND,
    JournalIncomplete,
    PartitionBase,
    PatientPartition,
    SessionPartition,
)
from streams.kafka.refill import committed_offset, read_range
from streams.kafka.wire import control_kind, control_message, parse_control

__all__ = ["Runtime", "build_app"]

#: Messages per batch and the longest wait (seconds) for a batch to fill: larger batches
#: write fewer journal chunks per message (bench/kafka_bench.py measures a draining worker).
BATCH = 5000
BATCH_WITHIN = 0.02
#: Seconds between looks for partitions whose last messages faust lost (``catch_up``).
CATCH_UP_INTERVAL = 10.0
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
        # one batch at a time per topic kind: the agent's, or catch_up's
        self.locks = {"events": asyncio.Lock(), "sessions": asyncio.Lock()}
        self._positions: dict[tuple[str, int], int] = {}  # last offsets seen by catch_up
        # (topic, partition) -> (events far behind when last said, monotonic time then)
        self._behind_logged: dict[tuple[str, int], tuple[int, float]] = {}

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
            f"entries, resuming at offset {st.last_offset + 1:,}"
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

    async def commit_processed(self, tps: set[TP]) -> None:
        """On revocation, commit each partition's processed offset before it moves.

        faust commits every ``broker_commit_interval`` seconds and, on revocation,
        drops what it has not committed: the next owner would process those messages
        again and publish their outputs a second time. faust has flushed the producer
        by now, so everything a processed message caused is on the broker and its
        offset can be committed. A topic whose batch is still in progress is left
        alone (its next owner repeats that batch)."""
        offsets: dict[TP, int] = {}
        for tp in tps:
            kind = self._kind(tp.topic)
            if kind is None or self.locks[kind].locked():
                continue
            st = self.states.get((kind, tp.partition))
            if st is not None and st.last_offset >= 0:
                offsets[tp] = st.last_offset + 1
        if not offsets:
            return
        try:
            done = await commit_now(self.app.consumer, offsets)
        except Exception as exc:  # the next owner repeats the uncommitted messages
            log(f"could not commit processed offsets on revocation: {exc!r}")
            return
        if not done:
            log(f"processed offsets of {len(offsets)} revoked partitions not committed")

    def _kind(self, topic: str) -> str | None:
        if topic == self.config.topics.events:
            return "events"
        if topic == self.config.topics.sessions:
            return "sessions"
        return None

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
            by_part.setdefault(ev.message.partition, []).append(ev.message)
        assignment = self.app.consumer.assignment()
        topic = self.topic_names[kind]
        async with self.locks[kind]:
            for p, messages in by_part.items():
                if TP(topic, p) not in assignment and not await self._owned(TP(topic, p)):
                    continue  # moved to another worker: it processes these again
                st = self.states.get((kind, p))
                if st is None:
                    parked = self.parked.pop((kind, p), None)
                    if parked is not None:
                        # ours again; anything faust dropped from its buffers with the
                        # revocation is read again by the hole check in _process
                        st = self.states[(kind, p)] = parked
                    else:
                        resume = await self._resume_offset(kind, p, messages[0].offset)
                        st = await self._restore(kind, p, resume)
                await self._process(kind, p, st, messages)
                self.processed += len(messages)

    async def _process(
        self, kind: str, p: int, st: PartitionBase, messages: Sequence[Any], *, lost: bool = False
    ) -> None:
        """Feed ``messages`` of partition ``p`` (faust or aiokafka messages, in offset
        order) to ``st``, write the journal and publish the outputs. A message that does
        not follow the previous one reveals messages faust lost: they are read again and
        fed first. ``lost``: ``messages`` themselves are such messages."""
        topic = self.topic_names[kind]
        outs = st.begin_batch()
        refilled: list[Any] = list(messages) if lost else []
        for msg in messages:
            if msg.offset <= st.last_offset:
                continue  # already in the state (a re-delivered fetch)
            if msg.offset > st.last_offset + 1:
                missing = await self._read_missing(topic, p, st.last_offset + 1, msg.offset)
                for rec in missing:
                    self._feed(st, rec)
                refilled.extend(missing)
            self._feed(st, msg)
        writes = st.end_batch()
        self._note_behind(topic, p, st)
        if not st.pruned:
            await self._write_journal(kind, p, writes)
        send = self.app.producer.send
        names = self.names
        sent = []
        for o in outs:
            fut = await send(names[o.role], o.key, o.value, o.partition, None, list(o.headers))
            if st.pruned:
                sent.append(fut)
        if st.pruned:
            # A pruned journal is where a restore carries on from, even if these offsets
            # are never committed: every output up to here must be on the broker first.
            # (A failed send raises here, the journal is not written, and the worker
            # stops: a restart processes these messages again.)
            await self.app.producer.flush()
            await asyncio.gather(*sent)
            await self._write_journal(kind, p, writes)
        # faust never acknowledges what it lost: do it, or its committed offset could
        # stay behind the hole until the next rebalance
        consumer = self.app.consumer
        for rec in refilled:
            consumer.ack(Message.from_message(rec, TP(topic, p)))
        self.processed += len(refilled)

    def _note_behind(self, topic: str, p: int, st: PartitionBase) -> None:
        """Say, at most once a minute a partition, that events arrive far behind the
        watermark: decisions then wait for the next tick, and an archive belongs in a
        group of its own (docs/kafka.md, "Replaying an archive")."""
        seen = self._behind_logged.get((topic, p), (0, 0.0))
        if st.behind > seen[0] and time.monotonic() - seen[1] >= 60.0:
            log(
                f"{topic}[{p}]: {st.behind - seen[0]:,} events read more than "
                f"{FAR_BEHIND / 3600:.0f} h behind the watermark; an archive replayed into "
                "a live group? see docs/kafka.md, Replaying an archive"
            )
            self._behind_logged[(topic, p)] = (st.behind, time.monotonic())

    @staticmethod
    def _feed(st: PartitionBase, msg: Any) -> None:
        """One message (event or control) into the partition state."""
        ck = control_kind(msg.headers)
        if ck is None:
            st.handle_event(msg.offset, msg.key, msg.value)
            return
        try:
            control = parse_control(ck, msg.value)
        except ValueError:
            st.handle_event(msg.offset, msg.key, msg.value)  # rejected
            return
        st.handle_control(msg.offset, control)

    async def catch_up(self) -> None:
        """Read what faust lost at the end of a partition. A lost message is otherwise
        noticed when the next one of its partition arrives, which in ``--replay`` mode
        may be never: a partition that shows more messages on the broker than it has
        processed, and has not moved since the last call, is read on straight from the
        broker (if faust was merely slow, its copies are skipped as already processed).
        Called every ``CATCH_UP_INTERVAL`` seconds."""
        consumer = self.app.consumer
        before, self._positions = self._positions, {}
        if getattr(self.app, "rebalancing", False):
            return
        for key, st in list(self.states.items()):
            kind, p = key
            tp = TP(self.topic_names[kind], p)
            self._positions[key] = st.last_offset
            try:
                end = consumer.highwater(tp)
            except Exception:
                continue
            if end is None or end <= st.last_offset + 1 or before.get(key) != st.last_offset:
                continue  # nothing missing, or still moving
            async with self.locks[kind]:
                if (
                    self.states.get(key) is not st
                    or st.last_offset != before[key]
                    or tp not in consumer.assignment()
                ):
                    continue  # moved on, or no longer ours, while we waited
                records = await self._read_missing(tp.topic, p, st.last_offset + 1, end)
                await self._process(kind, p, st, records, lost=True)

    async def _resume_offset(self, kind: str, p: int, first_delivered: int) -> int:
        """Where consumption of partition ``p`` resumes after an assignment: the group's
        committed offset, which faust read when the partition was assigned. The first
        message faust delivers can be later than that: faust loses fetched messages
        across a restart or rebalance too, and a journal that ends before the first
        *delivered* message is no hole (the lost messages are read again by the hole
        check in ``_process``). With no commit yet, consumption starts at the
        partition's first offset (auto_offset_reset=earliest).

        The committed offset is asked of the group coordinator: faust's copy of it is
        empty between a revocation and its reading of the new assignment's offsets, and
        a batch arriving in between took "no commit" for "start of the partition": the
        worker then dropped the partition's journal, read the partition again from
        its start and published its outputs again."""
        tp = TP(self.topic_names[kind], p)
        try:
            committed = await committed_offset(self.config, tp.topic, p)
        except Exception as exc:
            # faust's own record (it keeps 0 as None) is the fallback
            committed = committed_copy(self.app.consumer).get(tp)
            log(f"{tp.topic}[{p}]: could not ask the group's committed offset ({exc!r})")
            if committed is None:
                raise
        if committed is None:
            committed = await self._log_start(kind, p)
        if committed is None or committed >= first_delivered:
            return first_delivered
        log(
            f"{tp.topic}[{p}]: committed offset {committed:,}, first delivered "
            f"{first_delivered:,}: resuming from the committed offset"
        )
        return committed

    async def _log_start(self, kind: str, p: int) -> int | None:
        """The first offset still in the partition (``None`` if it cannot be read)."""
        tp = TP(self.topic_names[kind], p)
        try:
            return int((await self.app.consumer.earliest_offsets(tp))[tp])
        except Exception:
            return None

    async def _read_missing(self, topic: str, p: int, start: int, stop: int) -> list[Any]:
        """Offsets ``start`` to ``stop - 1`` of ``topic[p]``, which faust did not
        deliver, read straight from the broker (see ``streams.kafka.refill``)."""
        log(f"{topic}[{p}]: offsets {start:,} to {stop - 1:,} not delivered by faust; reading them")
        records = await read_range(self.config, topic, p, start, stop)
        if len(records) != stop - start:
            log(f"{topic}[{p}]: only {len(records):,} of them are still in the topic")
        return records

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

    def uncommitted(self) -> dict[str, int]:
        """Messages processed but not yet committed for the group, by
        ``topic[partition]``: what a restart or takeover would process again. The
        committed offset is faust's copy (updated on each commit of this worker); a
        partition whose copy is not known yet counts from the partition's start."""
        out = {}
        committed = committed_copy(self.app.consumer)
        for (kind, p), st in sorted(self.states.items()):
            tp = TP(self.topic_names[kind], p)
            next_to_read = committed.get(tp) or 0
            out[f"{tp.topic}[{p}]"] = max(0, st.last_offset + 1 - next_to_read)
        return out

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
        # fewer, larger produce requests (each batch publishes thousands of records);
        # 5 ms is nothing beside the live latency (allowed lateness plus tick)
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        table_standby_replicas=0,
        broker_commit_interval=1.0,
        # a dead worker's partitions move to the others after this long, not after
        # faust's default minute
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        stream_buffer_maxsize=20000,
        # the stream takes messages already queued without awaiting the channel
        cython_optimizations=True,
        autodiscover=False,
    )
    # faust's producer and consumer, corrected where the worker needs it
    # (streams.kafka.faust_seams says what and why)
    app.transport.Producer = IdempotentProducer  # type: ignore[misc]
    app.transport.Consumer = Consumer  # type: ignore[misc]
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
        await rt.commit_processed(revoked)
        rt.revoked(revoked)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        rt.assigned(assigned)

    if not replay:

        @app.timer(interval=config.tick_interval)
        async def ticker() -> None:
            await rt.tick()

    @app.timer(interval=CATCH_UP_INTERVAL)
    async def catch_up() -> None:
        try:
            await rt.catch_up()
        except Exception as exc:
            log(f"stopping: reading lost messages failed: {exc!r}")
            await app.crash(exc)
            raise

    @app.timer(interval=10.0)
    async def report_lag() -> None:
        lag = rt.lag()
        if lag:
            total = sum(lag.values())
            pending = sum(rt.uncommitted().values())
            rate = rt.processed / max(1e-9, time.monotonic() - rt.started)
            log(
                f"lag {total:,} messages over {len(lag)} partitions, {pending:,} processed "
                f"but not committed; {rate:,.0f} msg/s on average"
            )

    del patients, sessions, on_revoked, on_assigned, catch_up, report_lag
    return app, rt
