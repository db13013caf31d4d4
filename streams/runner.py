"""The embedded runner: events in, outcome records out, no broker.

``Runner`` feeds events to an engine and hands every record to a sink
(``streams.sinks``: ``FileSink`` into a directory, ``MemorySink`` in memory); at the end
it returns a ``RunSummary`` (``streams.report``, which also writes the table and the
warnings people read).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable

import orjson

from detectors.engine import Engine
from detectors.events import Event, format_time
from detectors.rules import Settings
from streams.deadletter import Rejected, excerpt
from streams.report import RunSummary
from streams.sinks import MemorySink, Sink

__all__ = ["ProgressFn", "Runner", "tune_gc"]

#: Receives a progress line now and then (``streams.report.stderr_progress`` prints it).
ProgressFn = Callable[[str], None]


class Runner:
    """Feeds events to an engine built from ``settings``; records go to ``sink``.

    ``allowed_lateness`` (seconds) overrides the rules file's setting.
    """

    def __init__(
        self,
        settings: Settings,
        sink: Sink | None = None,
        *,
        allowed_lateness: float | None = None,
        on_reject: Callable[[Rejected], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sink: Sink = sink if sink is not None else MemorySink()
        self.on_reject = on_reject
        self.rejected = 0
        self.rejected_kinds: dict[str, int] = {}
        self.document_kinds: dict[str, int] = {}
        self.events = 0
        self.engine = Engine.from_settings(
            settings,
            allowed_lateness=allowed_lateness,
            sink=self.sink.add,
            on_reject=self._refused,
        )

    def feed(
        self,
        records: Iterable[Event | Rejected],
        progress: ProgressFn | None = None,
        every: float = 2.0,
    ) -> None:
        """Process events and pass rejects on. ``progress`` gets a line every ``every`` s."""
        engine = self.engine  # engine.process(), not an alias: see Engine._advance
        kinds = self.document_kinds
        n = self.events
        start_n = n
        started = time.monotonic()
        next_report = started + every if progress else float("inf")
        for rec in records:
            if type(rec) is Event:
                engine.process(rec)
                n += 1
                if rec.type == "document.sent":
                    kind = rec.attrs.get("kind") or ""
                    kinds[kind] = kinds.get(kind, 0) + 1
                if not n & 0xFFF:  # every 4,096 events: settle now and then, report
                    if not n & 0xFFFF:
                        self._settle()
                    if time.monotonic() >= next_report:
                        assert progress is not None
                        rate = (n - start_n) / max(1e-9, time.monotonic() - started)
                        wm = self.engine.watermark
                        progress(
                            f"{n:,} events ({rate:,.0f}/s), {self.rejected:,} rejected, "
                            f"watermark {format_time(wm) if wm > float('-inf') else '-'}"
                        )
                        next_report = time.monotonic() + every
            else:
                assert isinstance(rec, Rejected)
                self._reject(rec)
        self.events = n

    def _refused(self, ev: Event, kind: str, reason: str) -> None:
        """An event the engine refused (beyond the correction horizon, an id conflict):
        into the dead letter like any reject."""
        source = ev.source or {}
        origin = str(source.get("file") or source.get("origin") or "(engine)")
        self._reject(
            Rejected(origin, f"event {ev.id}", reason, excerpt(orjson.dumps(ev.to_dict())), kind)
        )

    def _reject(self, rec: Rejected) -> None:
        self.rejected += 1
        self.rejected_kinds[rec.kind] = self.rejected_kinds.get(rec.kind, 0) + 1
        self.sink.reject(rec)
        if self.on_reject is not None:
            self.on_reject(rec)

    def _settle(self) -> None:
        settle = getattr(self.sink, "settle", None)
        if settle is not None:
            # a missed record can change until the horizon has passed its last chance
            engine = self.engine
            settle(engine.watermark - engine.late_retention - engine.horizon)

    def finish(self, as_of: float | None = None) -> RunSummary:
        """Move the watermark to ``as_of`` (epoch seconds, UTC) if given, decide what it
        has passed (also what waited for the end of the input), report what is still
        open, and close the sink."""
        engine = self.engine
        engine.advance_to(engine.watermark if as_of is None else as_of)
        open_records = engine.open_records()
        open_counts: dict[str, int] = {}
        for o in open_records:
            open_counts[o.detector] = open_counts.get(o.detector, 0) + 1
        tally = self.sink.close(open_records)
        return RunSummary(
            detectors=[d.name for d in engine.detectors],
            tally=tally,
            open=open_counts,
            events=self.events,
            duplicates=engine.stats.duplicates,
            rejected=self.rejected,
            watermark=engine.watermark,
            rejected_kinds=dict(self.rejected_kinds),
            files=dict(getattr(self.sink, "files", {})),
            types_seen=dict(engine.stats.events_by_type),
            document_kinds=dict(self.document_kinds),
            unknown_initiator=sum(getattr(d, "unknown_initiator", 0) for d in engine.detectors),
            count_detectors=frozenset(d.name for d in engine.detectors if d.measure == "count"),
        )


def tune_gc() -> None:
    """Collect cyclic garbage less often, for long runs (call once, at a program's edge).

    The engine and the records make no reference cycles, but a run keeps hundreds of
    thousands of live objects, and CPython's default thresholds rescan them all again and
    again: about a fifth of a run's CPU for no garbage found. With the correction horizon
    most of what the engine allocates lives for a month of event time, so every young
    collection finds nearly everything alive: the youngest generation is collected every
    million allocations (its survivors are looked at once, not twice), the middle one
    every hundred of those. Reference counting still frees everything as usual; only the
    cycle collector runs less.
    """
    gc.set_threshold(1_000_000, 100, 1000)
