"""Test a detector or a rules file against a handful of events, no broker, no files.

Example::

    from detectors.testing import ev, run_events
    out = run_events([
        ev("order.placed", "2026-03-02T09:00:00+00:00", refs={"order": "O1"},
           attrs={"priority": "stat"}),
        ev("result.reported", "2026-03-02T09:40:00+00:00", refs={"order": "O1"}),
    ], as_of="2026-03-03T00:00:00+00:00")
    assert out.outcome_of("result-overdue", "O1") == "met"
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detectors.contract import Detector
from detectors.engine import Engine
from detectors.events import Event, event_from_dict, parse_time
from detectors.records import Outcome
from detectors.rules import Settings, parse_settings

__all__ = ["TestRun", "ev", "run_events"]

_ids = itertools.count(1)


def ev(
    type: str,
    time: str,
    *,
    patient: str | None = "P1",
    refs: Mapping[str, str] | None = None,
    attrs: Mapping[str, Any] | None = None,
    id: str | None = None,
) -> Event:
    """Build a valid event tersely (a fresh id unless one is given)."""
    obj: dict[str, Any] = {
        "id": id or f"t{next(_ids)}",
        "type": type,
        "time": time,
        "refs": dict(refs or {}),
        "attrs": dict(attrs or {}),
    }
    if patient is not None:
        obj["patient"] = patient
    return event_from_dict(obj)


@dataclass
class TestRun:
    """What the engine said: the latest record per opportunity, every record in emission
    order, and the opportunities still open."""

    __test__ = False  # not a pytest test class

    latest: dict[str, Outcome]
    emitted: list[Outcome]
    open: list[Outcome]
    engine: Engine

    def by_detector(self, detector: str) -> list[Outcome]:
        """Latest records of one detector, sorted by opening time."""
        return sorted(
            (o for o in self.latest.values() if o.detector == detector),
            key=lambda o: (o.opened_at, o.failure_id),
        )

    def outcome_of(self, detector: str, key: str) -> str | None:
        """The outcome of the single decided opportunity of ``detector`` with ``key``
        (``open`` when it is still undecided, ``None`` when there is none)."""
        found = [o for o in self.latest.values() if o.detector == detector and o.key == key]
        found += [o for o in self.open if o.detector == detector and o.key == key]
        if len(found) > 1:
            raise AssertionError(f"{len(found)} opportunities for {detector} {key}")
        return found[0].outcome if found else None

    def canonical(self) -> list[tuple[Any, ...]]:
        """Everything but ``detected_at`` and the summary, sorted: equal for runs that must
        agree regardless of arrival order and batching."""
        rows = [
            (
                o.detector,
                o.failure_id,
                o.outcome,
                o.key,
                o.opened_at,
                o.due_at,
                o.closed_at,
                tuple(o.evidence),
                o.amended_from is not None and o.outcome in ("met", "void"),
            )
            for o in self.latest.values()
        ]
        rows += [
            (o.detector, o.failure_id, "open", o.key, o.opened_at, o.due_at, None, (), False)
            for o in self.open
        ]
        return sorted(rows)

    def final_ledger(self) -> list[tuple[Any, ...]]:
        """``canonical`` without whether a record amended another, and without the
        evidence ids: what the correction guarantee compares (``docs/detectors.md``). A
        late delivery may amend a first decision that an in-order delivery never made,
        and where several events share the deciding event time, the evidence names the
        one known when it was decided; the outcome and every time are the same."""
        return sorted(row[:-2] for row in self.canonical())


def run_events(
    events: Iterable[Event],
    *,
    rules: str | Settings | None = None,
    detectors: Sequence[Detector] | None = None,
    allowed_lateness: float | None = None,
    as_of: str | float | None = None,
) -> TestRun:
    """Run ``events`` (in the given order) through an engine and collect the outcomes.

    ``rules`` is YAML text or ready ``Settings``; ``detectors`` replaces the detector list.
    ``as_of`` (ISO text or epoch seconds) moves the watermark at the end.
    """
    settings = rules if isinstance(rules, Settings) else parse_settings(rules or "", "<test>")
    emitted: list[Outcome] = []
    engine = Engine.from_settings(
        settings, detectors=detectors, allowed_lateness=allowed_lateness, sink=emitted.append
    )
    engine.process_many(events)
    # the end of the input: decide what the watermark (or ``as_of``) has passed
    engine.advance_to(
        engine.watermark
        if as_of is None
        else parse_time(as_of)
        if isinstance(as_of, str)
        else as_of
    )
    latest: dict[str, Outcome] = {}
    for o in emitted:
        latest[o.failure_id] = o
    return TestRun(latest, emitted, engine.open_records(), engine)
