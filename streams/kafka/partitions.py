"""The state of one assigned partition, with no Kafka in it: engine, journal, routing.

``PatientPartition`` runs the patient-keyed detectors over one partition of the events
topic and forwards the events ``clinic-overbooked`` needs to the sessions topic, keyed by
clinic session. ``SessionPartition`` runs ``clinic-overbooked`` over one partition of the
sessions topic. Both take messages one at a time (``handle``), collect what to publish
(``Output``) and the journal entries of the batch (``end_batch``), and can be rebuilt
from their journal (``replay``) with output switched off. The faust layer
(``streams.kafka.app``) only moves bytes between Kafka and these objects.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from detectors.contract import Detector
from detectors.engine import Engine, EngineStats
from detectors.events import Event
from detectors.records import Outcome
from detectors.rules import Settings
from streams.deadletter import Rejected, excerpt
from streams.kafka import journal
from streams.kafka.journal import ADVANCE, EVENT, TICK, WATERMARK, Entry
from streams.kafka.wire import (
    Control,
    Output,
    control_message,
    decode_event,
    failure_value,
    outcome_value,
    partition_for,
    rejected_value,
)

__all__ = [
    "JournalIncomplete",
    "PartitionBase",
    "PatientPartition",
    "SessionPartition",
    "fresh",
    "session_detectors",
    "session_types",
    "stats_sum",
]

INF = float("inf")
NEG_INF = float("-inf")
#: Order in which a failure's statuses can follow each other.
_RANK = {"missed": 0, "violation": 0, "late": 1, "withdrawn": 1}
#: Watermark progress (seconds of event time) between looks for expired journal entries.
PRUNE_STEP = 86400.0
#: Share of the journal that must have expired before a prune is done. A prune rebuilds
#: the engine from the kept entries and writes them to the table again, so with a
#: quarter at least each journaled entry is replayed and rewritten at most three times
#: over on average (kept <= 3 x expired at every prune), where pruning whatever had
#: expired each day replayed and rewrote the whole journal daily.
PRUNE_FRACTION = 0.25
#: An event this far (seconds) behind its partition's watermark is "far behind": a backlog
#: or an archive published into a group that runs live. Counted, and the worker says so.
FAR_BEHIND = 3600.0


def fresh(detectors: Iterable[Detector]) -> list[Detector]:
    """New instances of ``detectors``: violation detectors keep their state in the
    instance, so every engine needs its own (the templates stay unused)."""
    return copy.deepcopy(list(detectors))


def session_detectors(settings: Settings) -> tuple[list[Detector], list[Detector]]:
    """``(by_patient, by_session)``: the detectors split by what their input is keyed by."""
    by_patient = [d for d in settings.detectors if d.partition_by != "session"]
    by_session = [d for d in settings.detectors if d.partition_by == "session"]
    return by_patient, by_session


def session_types(by_session: Iterable[Detector]) -> frozenset[str]:
    """The event types the sessions topic needs: every type a session-keyed detector
    reads (taken from the detectors, so a change there changes what is forwarded)."""
    return frozenset(t for d in by_session for t in d.reads)


@dataclass
class _Route:
    """Where one appointment's session events have been sent (sessions-topic
    partitions) and those events, so a newly reached partition gets the whole story."""

    parts: set[int] = field(default_factory=set)
    events: list[tuple[float, str, bytes]] = field(default_factory=list)
    session: str | None = None
    session_time: float = NEG_INF


class JournalIncomplete(Exception):
    """The journal in the table does not account for every offset before the resume
    point (the table is not fully restored yet, or records were lost)."""


class PartitionBase:
    """Common state: the engine, the in-memory journal and the publishing ledger.

    ``ledger`` maps ``failure_id`` to the failure status last published for it (read
    back from the failures topic on assignment). A failure's statuses only move forward
    (``missed`` then ``late`` or ``withdrawn``; ``violation`` alone), so a record whose
    status is not past the last published one is not published again: re-processing
    after a crash repeats no failure. ``None`` until loaded (nothing is filtered).
    """

    #: what the dead letter names as this partition's input (a topic kind)
    origin: str = "events"

    def __init__(self, partition: int, engine: Engine, horizon: float) -> None:
        self.partition = partition
        self.engine = engine
        self.horizon = horizon
        engine.sink = self._sink
        engine.on_reject = self._refused
        self.entries: list[Entry] = []
        self.chunk_keys: list[str] = []
        self.ledger: dict[str, str] | None = None
        self._batch: list[Entry] = []
        self._out: list[Output] | None = None
        self._last_prune = NEG_INF
        self._next_prune = INF  # watermark at which the first journaled entry expires
        #: the last batch pruned the journal: its outputs must be on the broker before
        #: its table writes are (see ``journal``)
        self.pruned = False
        self._pruned_at = -1  # offset of the latest prune
        self._from: int | None = None  # first source offset of the batch under way
        self._first_covered: int | None = None  # first offset the journal accounts for
        self.events = 0
        #: events read far behind the watermark (``FAR_BEHIND``)
        self.behind = 0
        self.controls = 0
        self.rejected: dict[str, int] = {}
        self.last_offset = -1

    # -- output

    def _sink(self, o: Outcome) -> None:
        out = self._out
        if out is None:
            return  # replaying: these records were published before
        key = o.failure_id.encode()
        out.append(Output("outcomes", key, outcome_value(o), self.partition))
        status = o.failure_status
        if status is not None:
            ledger = self.ledger
            if ledger is not None:
                last = ledger.get(o.failure_id)
                if last is not None and _RANK[status] <= _RANK[last]:
                    return  # published already, or superseded by a later status
                ledger[o.failure_id] = status
            out.append(Output("failures", key, failure_value(o), self.partition))

    def _refused(self, ev: Event, kind: str, reason: str) -> None:
        """An event the engine refused (beyond the correction horizon, an id conflict):
        to the dead letter like any reject, once (not again when the journal replays)."""
        if self._out is None:
            return
        raw = orjson.dumps(ev.to_dict())
        where = f"{self.partition}:{self.last_offset}"
        self._reject(Rejected(self.origin, where, reason, excerpt(raw), kind), None, raw)

    def _reject(self, r: Rejected, key: bytes | None, original: bytes | None) -> None:
        self.rejected[r.kind] = self.rejected.get(r.kind, 0) + 1
        if self._out is not None:
            self._out.append(Output("rejected", key, rejected_value(r, original)))

    # -- batches

    def begin_batch(self) -> list[Output]:
        """Start collecting outputs; returns the list they go to."""
        self._out = []
        self._batch = []
        self._from = None
        self.pruned = False
        return self._out

    def _note(self, offset: int) -> None:
        """Every message of a batch passes here, journaled or not."""
        if self._from is None:
            self._from = offset
        self.last_offset = offset

    def end_batch(self) -> dict[str, bytes | None]:
        """Finish a batch: the table writes to make (chunk key -> value, ``None`` to
        delete), including a prune of the journal when the watermark moved far enough."""
        self._after_batch()
        self._out = None
        writes: dict[str, bytes | None] = {}
        if self._from is not None:
            for start, end, items in journal.split_chunks(
                self._batch, self._from, self.last_offset
            ):
                key = journal.chunk_key(self.partition, start)
                writes[key] = journal.encode_chunk(items, end)
                self.chunk_keys.append(key)
            if self._first_covered is None:
                self._first_covered = self._from
            self.entries.extend(self._batch)
            self._batch = []
            self._from = None
        wm = self.engine.watermark
        # look for expired entries only when one has expired, at most once per
        # PRUNE_STEP of watermark (``_prune`` decides whether pruning is worth it)
        if (
            wm > self._next_prune
            and wm - self._last_prune >= PRUNE_STEP
            and self.last_offset > self._pruned_at  # one prune per offset
        ):
            self._last_prune = wm
            writes.update(self._prune(wm))
        return writes

    def _track(self, until: float) -> None:
        """Note when a newly journaled entry expires (watermark, epoch seconds)."""
        if until < self._next_prune:
            self._next_prune = until

    def _after_batch(self) -> None:
        """Hook for work at the end of a batch (e.g. watermark messages)."""

    def _prune(self, wm: float) -> dict[str, bytes | None]:
        kept, self._next_prune = journal.prune(self.entries, wm, self.horizon)
        if (len(self.entries) - len(kept)) < PRUNE_FRACTION * len(self.entries):
            return {}  # not yet worth a rebuild; the expired entries go next time
        # Rebuild from what is kept, so that this state is exactly the state a restart
        # would rebuild from the pruned journal.
        stats, last = self.engine.stats, self.last_offset
        self.reset()
        self.replay(kept)
        self.engine.stats, self.last_offset = stats, last
        self.entries = kept
        # the pruned journal, accounting for everything this journal ever covered, is
        # written first; then the old chunks it replaces are deleted
        first = self._first_covered if self._first_covered is not None else 0
        old = self.chunk_keys
        writes: dict[str, bytes | None] = {}
        self.chunk_keys = []
        pieces = journal.split_chunks(kept, first, last)
        for start, end, items in pieces:
            key = journal.chunk_key(self.partition, start, pruned_at=last)
            writes[key] = journal.encode_chunk(items, end, pruned_at=last, pieces=len(pieces))
            self.chunk_keys.append(key)
        for key in old:
            writes.setdefault(key, None)
        self.pruned = True
        self._pruned_at = last
        return writes

    def reset(self) -> None:
        """Forget all state (subclasses rebuild their engine)."""
        raise NotImplementedError

    def handle_control(self, offset: int, control: Control) -> None:
        """A control message at ``offset``."""
        raise NotImplementedError

    def handle_event(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        """An event message at ``offset`` (malformed ones are rejected)."""
        raise NotImplementedError

    def restore(
        self, chunks: dict[str, bytes], resume: int, log_start: int | None = None
    ) -> dict[str, bytes | None]:
        """Rebuild from this partition's journal ``chunks`` (key -> value), keeping only
        entries before ``resume``, the source offset consumption resumes from. Entries
        at or after it were journaled but not committed: they will be consumed again,
        so they are dropped. Returns the table writes that drop them.

        A pruned journal holds the state as of the offset the prune was made at only, so
        when that is at or past ``resume`` the state is rebuilt as of that offset, and
        the messages up to it, which consumption delivers again, are skipped as already
        processed (``last_offset``): their outputs were on the broker before the prune
        was written.

        Raises ``JournalIncomplete`` when the chunks do not account for every offset
        from ``log_start`` (the partition's first offset, if known) up to ``resume``
        without a hole: replaying them would give a wrong state."""
        writes: dict[str, bytes | None] = {}
        decoded = {key: journal.decode_chunk(v, self.horizon) for key, v in chunks.items()}
        # the pieces of each prune; the latest prune with all its pieces is the journal
        # up to its offset (a later one was cut short by a crash: the journal it was to
        # replace is still whole)
        prunes: dict[int, list[str]] = {}
        for key, c in decoded.items():
            if c.pruned_at is not None:
                prunes.setdefault(c.pruned_at, []).append(key)
        pruned_at = None
        for at in sorted(prunes, reverse=True):
            if len(prunes[at]) == decoded[prunes[at][0]].pieces:
                pruned_at = at
                break
        for key, c in list(decoded.items()):
            superseded = (
                pruned_at is not None
                and c.pruned_at != pruned_at
                and journal.parse_chunk_key(key)[1] <= pruned_at
            )
            unfinished = c.pruned_at is not None and (pruned_at is None or c.pruned_at > pruned_at)
            if superseded or unfinished:
                writes[key] = None
                del decoded[key]
        if pruned_at is not None:
            resume = max(resume, pruned_at + 1)
            self._pruned_at = pruned_at
        entries: list[Entry] = []
        keys: list[str] = []
        covered: int | None = None
        first_covered: int | None = None
        for key in sorted(decoded):
            _, first = journal.parse_chunk_key(key)
            if first >= resume:
                writes[key] = None
                continue
            chunk = decoded[key]
            if covered is not None and first != covered + 1:
                raise JournalIncomplete(
                    f"partition {self.partition}: journal has a hole after offset {covered}"
                )
            last = chunk.last
            kept = [e for e in chunk.entries if e.offset < resume]
            if last >= resume:  # never a pruned piece: those end by ``resume``
                last = resume - 1
                writes[key] = journal.encode_chunk(kept, last)
            covered = last
            if first_covered is None:
                first_covered = first
            entries.extend(kept)
            keys.append(key)
        if covered is None and log_start is not None and resume > log_start:
            raise JournalIncomplete(
                f"partition {self.partition}: journal is empty but consumption resumes "
                f"at {resume}, after offset {log_start}"
            )
        if first_covered is not None and log_start is not None and first_covered > log_start:
            raise JournalIncomplete(
                f"partition {self.partition}: journal starts at offset {first_covered}, "
                f"after the partition's first offset {log_start}"
            )
        if covered is not None and covered != resume - 1:
            raise JournalIncomplete(
                f"partition {self.partition}: journal ends at offset {covered} but "
                f"consumption resumes at {resume}"
            )
        self.reset()
        self.replay(entries)
        self.entries = entries
        self.chunk_keys = keys
        self._first_covered = first_covered
        self.last_offset = resume - 1
        self._next_prune = NEG_INF  # not known until the next prune looks
        return writes

    def replay(self, entries: Iterable[Entry]) -> None:
        """Feed journaled entries with output off (they were published before)."""
        self._out = None
        for e in entries:
            self._apply(e)
            self.last_offset = e.offset

    def _apply(self, e: Entry) -> None:
        raise NotImplementedError

    def _journal(self, e: Entry) -> None:
        self._batch.append(e)
        self._track(e.time + self.horizon)
        self._apply(e)


class PatientPartition(PartitionBase):
    """One partition of the events topic (events keyed by patient)."""

    def __init__(
        self,
        partition: int,
        settings: Settings,
        *,
        allowed_lateness: float,
        session_partitions: int,
        origin: str = "events",
        horizon: float | None = None,
    ) -> None:
        self.settings = settings
        self.allowed_lateness = allowed_lateness
        by_patient, by_session = session_detectors(settings)
        self.detectors = by_patient
        # forward session events only when a session-keyed detector (clinic-overbooked)
        # is on, and only the types those detectors read
        self.session_partitions = session_partitions if by_session else 0
        #: event types forwarded to the sessions topic: what its detectors ``reads``
        self.session_types = session_types(by_session)
        self.origin = origin
        if horizon is None:
            horizon = journal.horizon_of(settings, allowed_lateness)
        super().__init__(partition, self._engine(), horizon)
        self.routes: dict[str, _Route] = {}
        self._marked = NEG_INF
        #: Called with every event received (not with journal replays): feed health.
        self.on_event: Callable[[Event], None] | None = None

    def _engine(self) -> Engine:
        s = self.settings
        return Engine.from_settings(
            s, detectors=fresh(self.detectors), allowed_lateness=self.allowed_lateness
        )

    def reset(self) -> None:
        self.engine = self._engine()
        self.engine.sink = self._sink
        self.engine.on_reject = self._refused
        self.engine.on_reject = self._refused
        self.routes = {}

    def handle_control(self, offset: int, control: Control) -> None:
        """A tick or advance control message from the events topic."""
        self._note(offset)
        self.controls += 1
        if control.kind == "tick":
            self._journal(Entry(offset, TICK, control.time))
        elif control.kind == "advance":
            self._journal(Entry(offset, ADVANCE, control.time))
        else:
            self._reject(
                Rejected(
                    self.origin,
                    f"{self.partition}:{offset}",
                    "other",
                    f"control message {control.kind!r} does not belong on the events topic",
                ),
                None,
                None,
            )

    def handle_event(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One message of the events topic that is not a control message."""
        self._note(offset)
        ev = decode_event(value, self.origin, f"{self.partition}:{offset}")
        if isinstance(ev, Rejected):
            self._reject(ev, key, value)
            return
        self.events += 1
        if ev.time < self.engine.watermark - FAR_BEHIND:
            self.behind += 1
        if self.on_event is not None:
            self.on_event(ev)
        entry = journal.event_entry(offset, ev, value or b"", self.horizon)
        self._batch.append(entry)
        self._track(entry.until)
        self._process(ev, value or b"")

    def _apply(self, e: Entry) -> None:
        if e.kind == EVENT:
            ev = decode_event(e.raw, self.origin, "journal")
            if isinstance(ev, Event):
                self._process(ev, e.raw)
        elif e.kind == TICK:
            self.engine.advance_to(e.time - self.allowed_lateness)
        elif e.kind == ADVANCE:
            self.engine.advance_to(e.time)

    def _process(self, ev: Event, raw: bytes) -> None:
        self.engine.process(ev)
        if self.session_partitions and ev.type in self.session_types:
            self._route(ev, raw)

    # -- forwarding to the sessions topic

    def _send(self, part: int, key: str, raw: bytes) -> None:
        if self._out is not None:
            self._out.append(Output("sessions", key.encode(), raw, part))

    def _route(self, ev: Event, raw: bytes) -> None:
        n = self.session_partitions
        sid = ev.refs.get("session")
        if ev.type == "session.capacity":
            if sid:
                self._send(partition_for(sid.encode(), n), sid, raw)
            return
        appt = ev.refs.get("appointment")
        if not appt:
            return
        r = self.routes.get(appt)
        if r is None:
            r = self.routes[appt] = _Route()
        if sid and ev.time >= r.session_time:
            r.session, r.session_time = sid, ev.time
        if not sid and r.session and ev.type == "appointment.cancelled":
            # name the session the appointment was in, for readers of the topic
            obj = orjson.loads(raw)
            obj.setdefault("refs", {})["session"] = r.session
            raw = orjson.dumps(obj)
        key = sid or r.session or appt
        for part in sorted(r.parts):
            self._send(part, key, raw)
        r.events.append((ev.time, ev.id, raw))
        if sid:
            part = partition_for(sid.encode(), n)
            if part not in r.parts:
                # a partition this appointment reaches for the first time gets all of
                # its events, in event-time order, so its engine sees the whole story
                r.parts.add(part)
                for _, _, earlier in sorted(r.events):
                    self._send(part, key, earlier)

    def _after_batch(self) -> None:
        wm = self.engine.watermark
        if self.session_partitions and wm > self._marked and self._out is not None:
            self._marked = wm
            value, headers = control_message("watermark", wm, self.partition)
            for part in range(self.session_partitions):
                self._out.append(Output("sessions", None, value, part, tuple(headers)))


class SessionPartition(PartitionBase):
    """One partition of the internal sessions topic (events keyed by clinic session).

    The engine runs with an infinite allowed lateness, so event times never move its
    watermark: it moves to the lowest watermark of all events-topic partitions
    (``watermark`` messages), because the events of one session come from many patient
    partitions, each at its own pace.
    """

    def __init__(
        self,
        partition: int,
        settings: Settings,
        *,
        allowed_lateness: float,
        sources: int,
        origin: str = "sessions",
        horizon: float | None = None,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.origin = origin
        _, self.detectors = session_detectors(settings)
        if horizon is None:
            horizon = journal.horizon_of(settings, allowed_lateness)
        super().__init__(partition, self._engine(), horizon)
        self.marks: dict[int, float] = {}
        #: ids of the events in the journal: each is applied once, however often it is
        #: forwarded (pruned with the journal)
        self.seen: set[str] = set()

    def _engine(self) -> Engine:
        s = self.settings
        return Engine.from_settings(s, detectors=fresh(self.detectors), allowed_lateness=INF)

    def reset(self) -> None:
        self.engine = self._engine()
        self.engine.sink = self._sink
        self.marks = {}
        self.seen = set()

    def handle_control(self, offset: int, control: Control) -> None:
        """A watermark message from an events-topic partition."""
        self._note(offset)
        self.controls += 1
        if control.kind == "watermark" and control.source >= 0:
            self._journal(Entry(offset, WATERMARK, control.time, source=control.source))

    def handle_event(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        """A forwarded session event."""
        self._note(offset)
        ev = decode_event(value, self.origin, f"{self.partition}:{offset}")
        if isinstance(ev, Rejected):
            self._reject(ev, key, value)
            return
        if ev.id in self.seen:
            # Forwarded again by a patient partition that re-processed after a crash,
            # possibly long after: the engine's dedupe window (event time) may have
            # forgotten it, and a booking applied twice would count twice.
            return
        self.events += 1
        entry = journal.event_entry(offset, ev, value or b"", self.horizon)
        self._batch.append(entry)
        self._track(entry.until)
        self.seen.add(ev.id)
        self.engine.process(ev)

    def _apply(self, e: Entry) -> None:
        if e.kind == EVENT:
            ev = decode_event(e.raw, self.origin, "journal")
            if isinstance(ev, Event):
                self.seen.add(ev.id)
                self.engine.process(ev)
        elif e.kind == WATERMARK:
            if e.time > self.marks.get(e.source, NEG_INF):
                self.marks[e.source] = e.time
            if len(self.marks) >= self.sources:
                self.engine.advance_to(min(self.marks.values()))


def stats_sum(stats: Iterable[EngineStats]) -> EngineStats:
    """Engine counters added up over partitions (for metrics)."""
    total = EngineStats()
    for st in stats:
        for k, v in st.events_by_type.items():
            total.events_by_type[k] = total.events_by_type.get(k, 0) + v
        total.duplicates += st.duplicates
        total.late_events += st.late_events
        total.amendments += st.amendments
        for k, v in st.refused.items():
            total.refused[k] = total.refused.get(k, 0) + v
        for k, v in st.opened.items():
            total.opened[k] = total.opened.get(k, 0) + v
        for k, v in st.open_now.items():
            total.open_now[k] = total.open_now.get(k, 0) + v
        for k3, v in st.outcomes.items():
            total.outcomes[k3] = total.outcomes.get(k3, 0) + v
    return total


OnOutput = Callable[[Output], None]
