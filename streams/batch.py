"""Batch runs: a whole history through the pandas oracle (``detectors.oracle``) instead of
the streaming engine, with the same result shape, so the same files and summary."""

from __future__ import annotations

from collections.abc import Iterable

from detectors.events import Event
from detectors.oracle import detect, load
from detectors.rules import Settings
from streams.deadletter import Rejected
from streams.runner import RunResult

__all__ = ["run_batch"]


def run_batch(
    records: Iterable[Event | Rejected],
    settings: Settings,
    as_of: float | None = None,
    *,
    allowed_lateness: float | None = None,
) -> RunResult:
    """Read every record (rejects are kept for the dead letter), then detect over all the
    events at once. ``as_of`` is epoch seconds, UTC; ``allowed_lateness`` seconds (default
    from the settings)."""
    events: list[Event] = []
    rejected: list[Rejected] = []
    for rec in records:
        if type(rec) is Event:
            events.append(rec)
        else:
            assert isinstance(rec, Rejected)
            rejected.append(rec)
    found = detect(load(events, settings), settings, as_of, allowed_lateness=allowed_lateness)
    return RunResult(
        outcomes={o.failure_id: o for o in found.outcomes},
        open=found.open,
        rejected=rejected,
        events=found.events,
        duplicates=found.duplicates,
        watermark=found.watermark,
        detectors=found.detectors,
    )
