"""Helpers: run the streaming engine and the oracle on the same events and compare every
field of their records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from detectors.events import Event, parse_time
from detectors.records import Outcome
from detectors.rules import Settings, parse_settings
from detectors.testing import TestRun, run_events
from tests.oracle import OracleResult, detect, load


def rows(records: Iterable[Outcome]) -> dict[str, dict[str, Any]]:
    """Records as their outcome dicts without ``detected_at`` (the one field the spec lets
    differ: it records when the watermark step that decided it happened) and with the
    evidence events' types and times, by failure id (one record per id is asserted)."""
    out: dict[str, dict[str, Any]] = {}
    for o in records:
        assert o.failure_id not in out, f"two records for {o.failure_id}"
        rec = o.to_outcome_dict()
        del rec["detected_at"]
        rec["evidence_events"] = o.evidence_events  # (type, time): the failure form's
        out[o.failure_id] = rec
    return out


def oracle_run(
    events: Sequence[Event],
    settings: Settings,
    as_of: float | None = None,
    allowed_lateness: float | None = None,
) -> OracleResult:
    """The oracle over ``events``."""
    return detect(load(events, settings), settings, as_of, allowed_lateness=allowed_lateness)


def assert_same(
    engine: TestRun | tuple[dict[str, Outcome], list[Outcome]],
    oracle: OracleResult,
) -> None:
    """The engine's final records (latest per failure id, and open ones) equal the
    oracle's in every field but ``detected_at``."""
    latest, still_open = (engine.latest, engine.open) if isinstance(engine, TestRun) else engine
    got, want = rows(oracle.outcomes), rows(latest.values())
    got_open, want_open = rows(oracle.open), rows(still_open)
    assert _diff(got, want) == [], "decided records differ"
    assert _diff(got_open, want_open) == [], "open records differ"
    assert [o.failure_id for o in oracle.open] == [o.failure_id for o in still_open]


def _diff(got: dict[str, Any], want: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [
        (got.get(k), want.get(k)) for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)
    ]


def both(
    events: Sequence[Event],
    rules: str = "",
    *,
    as_of: str | None = None,
    allowed_lateness: float | None = None,
) -> OracleResult:
    """Run the engine (on the events in event-time order, then as given) and the oracle,
    assert they agree, and return the oracle's result."""
    at = None if as_of is None else parse_time(as_of)
    oracle = oracle_run(events, parse_settings(rules, "<test>"), at, allowed_lateness)
    in_order = sorted(events, key=lambda e: e.time)
    # each engine gets its own settings: the violation detectors in them keep state
    kw: dict[str, Any] = {"rules": rules, "as_of": at, "allowed_lateness": allowed_lateness}
    assert_same(run_events(in_order, **kw), oracle)
    assert_same(run_events(events, **kw), oracle)
    return oracle


def outcome_of(result: OracleResult, detector: str, key: str) -> str | None:
    """The outcome (or ``open``) of the single opportunity of ``detector`` with ``key``."""
    found = [o for o in [*result.outcomes, *result.open] if (o.detector, o.key) == (detector, key)]
    assert len(found) <= 1, found
    return found[0].outcome if found else None
