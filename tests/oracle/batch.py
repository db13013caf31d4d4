"""A whole history through the pandas oracle instead of the streaming engine, into the
same sinks, so the same files and summary: what ``carewatch run --batch`` did before it
was retired, kept to hold the two implementations to the same files
(``tests/streams/test_oracle_files.py``) and for ``bench/scale_bench.py``."""

from __future__ import annotations

from collections.abc import Iterable

from detectors.events import Event
from detectors.records import Outcome
from detectors.rules import Settings
from streams.deadletter import Rejected
from streams.report import RunSummary
from streams.sinks import Sink
from tests.oracle import detect, load

__all__ = ["run_batch"]


def run_batch(
    records: Iterable[Event | Rejected],
    settings: Settings,
    sink: Sink,
    as_of: float | None = None,
    *,
    allowed_lateness: float | None = None,
) -> RunSummary:
    """Read every record (rejects go to the sink's dead letter as they come), then detect
    over all the events at once. ``as_of`` is epoch seconds, UTC; ``allowed_lateness``
    seconds (default from the settings). Holds every event in memory."""
    events: list[Event] = []
    kinds: dict[str, int] = {}
    types: dict[str, int] = {}
    for rec in records:
        if type(rec) is Event:
            events.append(rec)
            types[rec.type] = types.get(rec.type, 0) + 1
        else:
            assert isinstance(rec, Rejected)
            kinds[rec.kind] = kinds.get(rec.kind, 0) + 1
            sink.reject(rec)
    found = detect(load(events, settings), settings, as_of, allowed_lateness=allowed_lateness)
    for o in found.outcomes:
        if o.amended_from == "missed":
            # the oracle gives final records; a streaming run declared it missed first,
            # and the sink expects the record an amendment replaces
            sink.add(
                Outcome(
                    o.failure_id, o.detector, "missed", o.key, o.patient, o.refs,
                    o.opened_at, o.due_at, None, o.detected_at, o.evidence[:1], o.attrs,
                    "", None, o.evidence_events[:1],
                )
            )  # fmt: skip
        sink.add(o)
    open_counts: dict[str, int] = {}
    for o in found.open:
        open_counts[o.detector] = open_counts.get(o.detector, 0) + 1
    tally = sink.close(found.open)
    return RunSummary(
        detectors=found.detectors,
        tally=tally,
        open=open_counts,
        events=found.events,
        duplicates=found.duplicates,
        rejected=sum(kinds.values()),
        watermark=found.watermark,
        rejected_kinds=kinds,
        files=dict(getattr(sink, "files", {})),
        types_seen=types,
        count_detectors=frozenset(d.name for d in settings.detectors if d.measure == "count"),
    )
