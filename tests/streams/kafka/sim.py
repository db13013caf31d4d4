"""An in-memory stand-in for the topics, to test the per-partition logic without Kafka:
lists of (key, value, headers) per partition, consumed in batches."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from detectors.rules import Settings
from streams.kafka.partitions import PartitionBase, PatientPartition, SessionPartition
from streams.kafka.wire import (
    Output,
    control_kind,
    control_message,
    event_key,
    parse_control,
    partition_for,
)

Message = tuple[bytes | None, bytes, tuple[tuple[str, bytes], ...]]


@dataclass
class Cluster:
    settings: Settings
    partitions: int = 3
    lateness: float = 600.0
    events: list[list[Message]] = field(default_factory=list)
    sessions: list[list[Message]] = field(default_factory=list)
    outcomes: list[Output] = field(default_factory=list)
    failures: list[Output] = field(default_factory=list)
    rejected: list[Output] = field(default_factory=list)
    table: dict[str, bytes] = field(default_factory=dict)
    pos: dict[tuple[str, int], int] = field(default_factory=dict)
    states: dict[tuple[str, int], PartitionBase] = field(default_factory=dict)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.events = [[] for _ in range(self.partitions)]
        self.sessions = [[] for _ in range(self.partitions)]

    def publish_lines(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            try:
                key = event_key(orjson.loads(line))
            except orjson.JSONDecodeError:
                key = None
            p = partition_for(key or b"", self.partitions)
            self.events[p].append((key, line.rstrip(b"\n"), ()))

    def control(self, kind: str, time: float) -> None:
        value, headers = control_message(kind, time)
        for p in range(self.partitions):
            self.events[p].append((None, value, tuple(headers)))

    def state(self, topic: str, p: int) -> PartitionBase:
        st = self.states.get((topic, p))
        if st is None:
            st = self._new(topic, p)
            # rebuild from the journal (as a worker does on assignment)
            resume = self.pos.get((topic, p), 0)
            prefix = f"{topic[0]}{p:05d}."
            chunks = {k[1:]: v for k, v in self.table.items() if k.startswith(prefix)}
            self._write(topic, st.restore(chunks, resume))
            st.ledger = {}
            for o in self.failures:
                if o.partition == p:
                    rec = orjson.loads(o.value)
                    st.ledger[rec["failure_id"]] = rec["status"]
            self.states[(topic, p)] = st
        return st

    def _new(self, topic: str, p: int) -> PartitionBase:
        if topic == "events":
            return PatientPartition(
                p, self.settings, allowed_lateness=self.lateness, session_partitions=self.partitions
            )
        return SessionPartition(
            p, self.settings, allowed_lateness=self.lateness, sources=self.partitions
        )

    def step(self, topic: str, p: int, n: int) -> int:
        log = (self.events if topic == "events" else self.sessions)[p]
        start = self.pos.get((topic, p), 0)
        batch = log[start : start + n]
        if not batch:
            return 0
        st = self.state(topic, p)
        outs = st.begin_batch()
        for i, (key, value, headers) in enumerate(batch, start):
            if i <= st.last_offset:
                continue  # in the state already (restored from a prune made later)
            kind = control_kind(headers)
            if kind is not None:
                st.handle_control(i, parse_control(kind, value))
            else:
                st.handle_event(i, key, value)
        writes = st.end_batch()
        if not st.pruned:
            self._write(topic, writes)
        for o in outs:
            if o.role == "sessions":
                assert o.partition is not None
                self.sessions[o.partition].append((o.key, o.value, o.headers))
            else:
                getattr(self, o.role).append(o)
        if st.pruned:  # as the worker does: a prune is written after the outputs
            self._write(topic, writes)
        self.pos[(topic, p)] = start + len(batch)
        return len(batch)

    def _write(self, topic: str, writes: dict[str, bytes | None]) -> None:
        for k, v in writes.items():
            tk = topic[0] + k
            if v is None:
                self.table.pop(tk, None)
            else:
                self.table[tk] = v

    def commit(self) -> None:
        self.committed = dict(self.pos)

    def crash(self) -> None:
        """A kill -9: in-memory state is lost and consumption resumes from the last
        committed positions; what was already written (journal, outputs) stays."""
        self.states.clear()
        self.pos = dict(self.committed)

    def drain(self, n: int = 50) -> None:
        while True:
            done = 0
            for p in range(self.partitions):
                done += self.step("events", p, n)
                done += self.step("sessions", p, n)
            if not done:
                return

    def latest(self, role: str) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for o in getattr(self, role):
            rec = orjson.loads(o.value)
            out[rec["failure_id"]] = rec
        return out
