"""The embedded runner: events in, outcome records out, no broker.

``Runner`` feeds events to an engine and hands every record to a sink:

- ``FileSink`` streams into a directory: ``outcomes.jsonl`` (every decided opportunity,
  in the order decided), ``failures.jsonl`` (every failure, including withdrawn ones),
  ``open.jsonl`` (undecided at the end) and ``rejected.jsonl`` (the dead letter). Only
  ``missed`` records wait in memory (one may still turn ``late``): memory stays flat
  however long the input.
- ``MemorySink`` keeps the latest record per ``failure_id``, for tests, the batch oracle
  and anyone embedding Carewatch in Python.

The same input in the same order always gives the same bytes.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from detectors.builtin import BUILTINS
from detectors.engine import Engine
from detectors.errors import ConfigError
from detectors.events import Event, format_time
from detectors.records import FAILURE_OUTCOMES, Outcome
from detectors.rules import Settings
from streams.deadletter import Rejected, excerpt

__all__ = [
    "FileSink",
    "MemorySink",
    "RunSummary",
    "Runner",
    "Sink",
    "feed_gaps",
    "format_summary",
    "input_warnings",
    "stderr_progress",
    "tune_gc",
]

ProgressFn = Callable[[str], None]
_COLUMNS = ("met", "late", "missed", "void", "violation")


@dataclass
class RunSummary:
    """Counts of a finished run. ``tally`` maps (detector, outcome) to latest records."""

    detectors: list[str]
    tally: dict[tuple[str, str], int]
    open: dict[str, int]
    events: int
    duplicates: int
    rejected: int
    watermark: float
    rejected_kinds: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    #: which event types arrived, with counts (what ``feed_gaps`` looks at). Streaming
    #: counts after de-duplication and puts types no detector reads under ``other``;
    #: batch counts every event as read.
    types_seen: dict[str, int] = field(default_factory=dict)
    #: ``document.sent`` events by ``attrs.kind`` (``""``: no kind), as read
    document_kinds: dict[str, int] = field(default_factory=dict)
    #: appointment changes that did not say who asked for them
    unknown_initiator: int = 0

    def rows(self) -> list[dict[str, Any]]:
        """Per detector: each outcome, decided opportunities, open, failures, failure rate.

        The failure rate is failures out of the opportunities that could fail: a voided
        one (an order cancelled, an appointment cancelled by the patient) was never
        due, so it is in neither count.
        """
        names = list(self.detectors)
        names += sorted({d for d, _ in self.tally if d not in names})
        out = []
        for det in names:
            row: dict[str, Any] = {k: self.tally.get((det, k), 0) for k in _COLUMNS}
            row["opportunities"] = sum(row[k] for k in _COLUMNS)
            row["open"] = self.open.get(det, 0)
            failures = sum(row[k] for k in FAILURE_OUTCOMES)
            row["failures"] = failures
            could_fail = row["opportunities"] - row["void"]
            row["failure_rate"] = failures / could_fail if could_fail else None
            out.append({"detector": det, **row})
        return out


class Sink(Protocol):
    """Where a runner's records go."""

    def add(self, o: Outcome) -> None:
        """Take a record; a later record with the same ``failure_id`` supersedes it."""

    def reject(self, r: Rejected) -> None:
        """Take a rejected input."""

    def close(self, open_records: list[Outcome]) -> dict[tuple[str, str], int]:
        """Flush; return the tally of latest records by (detector, outcome)."""


class MemorySink:
    """Keeps the latest record per ``failure_id`` and every reject, in memory."""

    def __init__(self) -> None:
        self.latest: dict[str, Outcome] = {}
        self.rejected: list[Rejected] = []
        self.open: list[Outcome] = []

    def add(self, o: Outcome) -> None:
        self.latest[o.failure_id] = o

    def reject(self, r: Rejected) -> None:
        self.rejected.append(r)

    def close(self, open_records: list[Outcome]) -> dict[tuple[str, str], int]:
        self.open = open_records
        tally: dict[tuple[str, str], int] = {}
        for o in self.latest.values():
            k = (o.detector, o.outcome)
            tally[k] = tally.get(k, 0) + 1
        return tally

    def failures(self) -> list[Outcome]:
        """Records that are or were failures, sorted by (detector, failure_id)."""
        found = [o for o in self.latest.values() if o.failure_status is not None]
        return sorted(found, key=lambda o: (o.detector, o.failure_id))


class FileSink:
    """Streams records into ``out_dir`` (created if needed); see the module docstring."""

    NAMES = ("failures", "outcomes", "open", "rejected")

    def __init__(self, out_dir: Path) -> None:
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"output directory {out_dir} is a file; name a directory")
        self.files = {name: out_dir / f"{name}.jsonl" for name in self.NAMES}
        self._f: dict[str, IO[bytes]] = {}
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            for name, path in self.files.items():
                # 1 MiB buffers: a run writes one line per opportunity, and with the default
                # 8 KiB each file took a write system call every ~16 records (~2% of a run)
                self._f[name] = path.open("wb", buffering=1 << 20)
        except OSError as exc:
            for f in self._f.values():
                f.close()
            raise ConfigError(f"cannot write into {out_dir}: {exc.strerror or exc}") from None
        self._outcomes, self._failures = self._f["outcomes"], self._f["failures"]
        self._missed: dict[str, Outcome] = {}
        self._tally: dict[tuple[str, str], int] = {}
        self._dumps = orjson.dumps

    def add(self, o: Outcome) -> None:
        if o.amended_from is None:
            if o.outcome == "missed":
                self._missed[o.failure_id] = o  # may still turn late: written at the end
                return
        elif self._missed.pop(o.failure_id, None) is not None:
            # the missed record it amends was never written: nothing to take back
            self._write(o, replaces=False)
            return
        self._write(o)

    def _write(self, o: Outcome, replaces: bool = True) -> None:
        k = (o.detector, o.outcome)
        tally = self._tally
        tally[k] = tally.get(k, 0) + 1
        if replaces and o.amended_from is not None:  # the record it amends leaves the tally
            before = (o.detector, o.amended_from)
            tally[before] = tally.get(before, 0) - 1
        self._outcomes.write(o.outcome_json() + b"\n")
        if o.outcome in FAILURE_OUTCOMES or o.amended_from in FAILURE_OUTCOMES:
            self._failures.write(o.failure_json() + b"\n")  # what ``failure_status`` tells

    def reject(self, r: Rejected) -> None:
        self._f["rejected"].write(self._dumps(r.to_dict()) + b"\n")

    def settle(self, before: float) -> None:
        """Write the missed records whose deadline is before ``before`` (epoch seconds):
        the engine no longer watches them, so they can no longer turn late."""
        done = [o for o in self._missed.values() if o.due_at is not None and o.due_at < before]
        for o in sorted(done, key=lambda o: (o.detected_at, o.failure_id)):
            del self._missed[o.failure_id]
            self._write(o)

    def close(self, open_records: list[Outcome]) -> dict[tuple[str, str], int]:
        for o in sorted(self._missed.values(), key=lambda o: (o.detected_at, o.failure_id)):
            self._write(o)
        self._missed.clear()
        for o in open_records:
            self._f["open"].write(o.outcome_json() + b"\n")
        for f in self._f.values():
            f.close()
        return self._tally


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
        )


def feed_gaps(summary: RunSummary, detectors: Iterable[object]) -> list[str]:
    """Warnings for expectation rules that failed for want of any closing event at all.

    When not one event of a rule's closing types is in the input, every one of its
    opportunities ends late or missed; usually that means the feed does not carry those
    events (HL7 v2 has no acknowledgement message, for one), not that the hospital
    failed every time. One line per such rule, for people to read.
    """
    rows = {r["detector"]: r for r in summary.rows()}
    out = []
    for det in detectors:
        closes = getattr(det, "closes", ())
        row = rows.get(str(getattr(det, "name", "")))
        if not closes or row is None or not row["failures"]:
            continue
        if any(summary.types_seen.get(t, 0) for t in closes):
            continue
        name = row["detector"]
        remedy = (
            f"switch it off in a rules file ('{name}: off' under detectors, docs/rules.md)"
            if name in BUILTINS
            else "remove the rule or plugin from the rules file"
        )
        n = row["opportunities"]
        out.append(
            f"{name}: {row['failures']:,} of {n:,} {'opportunity' if n == 1 else 'opportunities'} "
            f"failed, and the input has no {' or '.join(closes)} event at all. If this feed "
            f"does not carry them, these are not real failures: {remedy}."
        )
    return out


#: A run whose rejects are more than this share of its input records is warned about.
REJECTED_WARNING_SHARE = 0.05
#: A detector failing this share of its decided opportunities, over at least
#: ``IMPLAUSIBLE_MIN_DECIDED`` of them, more likely has a feed or mapping problem.
IMPLAUSIBLE_FAILURE_RATE = 0.9
IMPLAUSIBLE_MIN_DECIDED = 20

# document.sent kinds that close a built-in detector: a feed with documents but none of a
# kind makes that detector fail every time
_DOCUMENT_KINDS = {
    "discharge-summary-overdue": "discharge-summary",
    "clinic-letter-overdue": "clinic-letter",
}


def input_warnings(summary: RunSummary, detectors: Iterable[object]) -> list[str]:
    """Warnings for a run whose input cannot support its answer, for people to read: many
    rejected records (with the main reasons), events the engine refused (beyond the
    correction horizon, id conflicts), changes with no initiator, closing documents of a
    kind the input never has, and detectors that fail nearly always."""
    out = []
    kinds_rejected = summary.rejected_kinds
    refused = kinds_rejected.get("beyond-horizon", 0) + kinds_rejected.get("id-conflict", 0)
    total = summary.events + summary.rejected - refused  # a refused event was read as one
    if total and summary.rejected > REJECTED_WARNING_SHARE * total:
        reasons = sorted(summary.rejected_kinds.items(), key=lambda kv: -kv[1])[:3]
        named = ", ".join(f"{k} {n:,}" for k, n in reasons)
        out.append(
            f"{summary.rejected:,} of {total:,} input records "
            f"({100 * summary.rejected / total:.0f}%) were rejected (mostly: {named}); the "
            "figures above leave them out. The reasons are in the dead letter."
        )
    horizon = summary.rejected_kinds.get("beyond-horizon", 0)
    if horizon:
        out.append(
            f"{horizon:,} events were further behind the newest events than the correction "
            "horizon and were not used (beyond-horizon in the dead letter); run the input in "
            "time order, or raise engine.correction_horizon in the rules."
        )
    conflicts = summary.rejected_kinds.get("id-conflict", 0)
    if conflicts:
        out.append(
            f"{conflicts:,} events reused an id of a different event and were not used "
            "(id-conflict in the dead letter); for merged HL7 v2 feeds set "
            "hl7v2.event_id_includes_sender: true in the site mapping."
        )
    names = {str(getattr(d, "name", "")): d for d in detectors}
    notice = names.get("reschedule-notice")
    unknown = summary.unknown_initiator
    if unknown:
        monitored = getattr(notice, "monitor_unknown_initiator", True)
        out.append(
            f"{unknown:,} appointment changes did not say who asked for them (initiated_by); "
            + (
                "they are monitored as 'unknown' by reschedule-notice. Map the reason codes "
                "(codes.initiated_by in the site mapping) to tell them apart."
                if monitored
                else "reschedule-notice leaves them out (monitor_unknown_initiator: false)."
            )
        )
    kinds = summary.document_kinds
    for name, kind in _DOCUMENT_KINDS.items():
        row = next((r for r in summary.rows() if r["detector"] == name), None)
        if row and row["failures"] and kinds and not kinds.get(kind):
            present = ", ".join(sorted(k for k in kinds if k))
            out.append(
                f"{name}: the input has documents ({present or 'of no kind'}) but not one "
                f"{kind}: check codes.document_kinds in the site mapping."
            )
    for r in summary.rows():
        det = names.get(r["detector"])
        closing = getattr(det, "closes", ())
        decided = r["opportunities"] - r["void"]
        rate = r["failure_rate"]
        if not closing or rate is None or decided < IMPLAUSIBLE_MIN_DECIDED:
            continue  # a violation detector has no rate to doubt
        if rate >= IMPLAUSIBLE_FAILURE_RATE:
            closes = " or ".join(closing)
            out.append(
                f"{r['detector']}: {r['failures']:,} of {decided:,} opportunities failed "
                f"({100 * rate:.0f}%). A rate this high usually means the closing events "
                f"({closes}) exist but never link to the opening ones: check the site "
                "mapping (document kinds, reason codes) and the refs both sides carry."
            )
    return out


def tune_gc() -> None:
    """Collect cyclic garbage less often, for long runs (call once, at a program's edge).

    The engine and the records make no reference cycles, but a run keeps hundreds of
    thousands of live objects, and CPython's default thresholds rescan them all again and
    again: about a fifth of a run's CPU for no garbage found. Reference counting still
    frees everything as usual; only the cycle collector runs less.
    """
    gc.set_threshold(100_000, 50, 1000)


def format_summary(summary: RunSummary) -> str:
    """The table people read at the end of a run."""
    head = (
        "detector",
        "opportunities",
        "met",
        "late",
        "missed",
        "void",
        "violations",
        "open",
        "failure rate",
    )
    lines = [head]
    for r in summary.rows():
        rate = "-" if r["failure_rate"] is None else f"{100 * r['failure_rate']:.1f}%"
        cells = [
            r[k] for k in ("opportunities", "met", "late", "missed", "void", "violation", "open")
        ]
        lines.append((r["detector"], *(f"{c:,}" for c in cells), rate))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = []
    for j, row in enumerate(lines):
        cells_out = [row[0].ljust(widths[0])]
        cells_out += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        text.append("  ".join(cells_out))
        if j == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def stderr_progress(msg: str, stream: IO[str] | None = None) -> None:
    """Default progress line writer: to ``stream``, else to ``sys.stderr`` as it is now
    (not as it was at import: a caller may have replaced it since)."""
    print(f"carewatch: {msg}", file=stream if stream is not None else sys.stderr, flush=True)
