"""Property tests: outcomes depend on the set of events, not on how they arrive.

Any arrival order in which every event is within the allowed lateness, any split into
batches, duplicates, and a snapshot/restore between batches (a worker restart) must all
give the same canonical records.
"""

from __future__ import annotations

import itertools
import os
import random
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.engine import Engine
from detectors.events import BUILTIN_TYPES, Event, event_from_dict
from detectors.records import Outcome
from detectors.rules import parse_settings
from detectors.testing import TestRun, run_events
from tests.detectors.helpers import FAR, at, epoch

LATENESS = 600.0  # the default allowed lateness, seconds

KEYS = {
    "appointment": ["A1", "A2"],
    "order": ["O1", "O2"],
    "encounter": ["E1", "E2"],
    "session": ["S1", "S2"],
}
PATIENTS = ["P1", "P2"]
SESSION_STARTS = {"S1": 60 * 2, "S2": 60 * 4}  # minutes after the events' first hour


#: the opening types of the built-in detectors that open once per key, and how far apart
#: (hours) the tests across a short horizon keep one key's openings
ONCE_OPENINGS = frozenset({"appointment.attended", "encounter.discharged"})
ONCE_SPAN_HOURS = 2


@st.composite
def an_event(draw: st.DrawFn, n: int, hours: int = 5) -> dict[str, Any]:
    etype = draw(
        # every built-in type but did-not-attend, which no detector reads
        st.sampled_from(sorted(BUILTIN_TYPES - {"appointment.missed"}))
    )
    # a few hours on a 5-minute grid: ties in event time are common, and most events
    # are within the lateness (10 minutes) of others, so arrival orders really differ
    minute = draw(st.integers(0, 60 * hours)) // 5 * 5
    if etype in ONCE_OPENINGS and hours > ONCE_SPAN_HOURS:
        # the known limit (docs/detectors.md): the opening events of one key of a detector
        # that opens once per key lie within the correction horizon of each other
        minute %= 60 * ONCE_SPAN_HOURS
    refs = {
        kind: draw(st.sampled_from(ids))
        for kind, ids in KEYS.items()
        if draw(st.integers(0, 4))  # present four times out of five
    }
    attrs: dict[str, Any] = {
        "priority": draw(st.sampled_from(["stat", "urgent", "routine"])),
        "critical": draw(st.booleans()),
        "abnormal": draw(st.booleans()),
        "kind": draw(st.sampled_from(["clinic-letter", "discharge-summary", "appointment-letter"])),
        "initiated_by": draw(st.sampled_from(["hospital", "patient", "unknown"])),
        "deceased": draw(st.sampled_from([False, False, False, True])),
        "recipient": draw(st.sampled_from(["patient", "gp", "other"])),
        "previous_start": at(minutes=draw(st.integers(0, 60 * 8))),
        "start": at(minutes=draw(st.integers(0, 60 * 8))),
        "capacity": draw(st.integers(0, 3)),
        "site": draw(st.sampled_from(["north", "south"])),
    }
    session = refs.get("session")
    if session is not None:
        # A clinic session has one start; its capacity says it, and an appointment in it
        # starts at or after it (clinic-overbooked's correction guarantee assumes both).
        session_start = SESSION_STARTS[session]
        slot = 0 if etype == "session.capacity" else draw(st.integers(0, 8)) * 15
        attrs["start"] = at(minutes=session_start + slot)
    obj: dict[str, Any] = {
        "id": f"e{n:03d}",
        "type": etype,
        "time": at(minutes=minute),
        "refs": refs,
        "attrs": attrs,
    }
    if etype != "session.capacity":
        obj["patient"] = draw(st.sampled_from(PATIENTS))
    return obj


@st.composite
def event_sets(draw: st.DrawFn, hours: int = 5, most: int = 40) -> list[Event]:
    n = draw(st.integers(1, most))
    return [event_from_dict(draw(an_event(i, hours))) for i in range(n)]


def arrival_order(events: list[Event], rng: random.Random) -> list[Event]:
    """A random order in which every event is within the allowed lateness: delivering by
    time + jitter (jitter <= lateness) guarantees time >= max seen so far - lateness."""
    keyed = sorted(events, key=lambda e: (e.time + rng.uniform(0, LATENESS), rng.random()))
    seen = float("-inf")
    for e in keyed:
        assert e.time >= seen - LATENESS
        seen = max(seen, e.time)
    return keyed


def canonical(events: list[Event], *, as_of: str | None = FAR) -> list[tuple[Any, ...]]:
    return run_events(events, as_of=as_of).canonical()


SETTINGS = settings(
    max_examples=int(os.environ.get("CAREWATCH_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(events=event_sets(), seed=st.integers(0, 2**32))
def test_any_arrival_order_within_lateness_gives_the_same_outcomes(
    events: list[Event], seed: int
) -> None:
    rng = random.Random(seed)
    in_time_order = sorted(events, key=lambda e: (e.time, e.id))
    shuffled = arrival_order(events, rng)
    assert canonical(shuffled) == canonical(in_time_order)
    # and also mid-stream, before everything is decided
    assert canonical(shuffled, as_of=None) == canonical(in_time_order, as_of=None)


@SETTINGS
@given(events=event_sets(), seed=st.integers(0, 2**32))
def test_duplicates_anywhere_change_nothing(events: list[Event], seed: int) -> None:
    rng = random.Random(seed)
    base = arrival_order(events, rng)
    with_dups = list(base)
    for e in rng.sample(base, k=min(len(base), 5)):
        # re-deliver right after itself or a little later (still within lateness)
        i = with_dups.index(e)
        with_dups.insert(min(len(with_dups), i + rng.randint(1, 3)), e)
    assert canonical(with_dups) == canonical(base)


def _run_in_batches_with_restarts(events: list[Event], cuts: list[int], rules: str = "") -> TestRun:
    """Each batch runs in a fresh engine restored from the previous one's snapshot
    (through JSON, as a runtime would store it)."""
    latest: dict[str, Outcome] = {}

    def keep(o: Outcome) -> None:
        latest[o.failure_id] = o

    bounds = [0, *sorted(cuts), len(events)]
    state: dict[str, Any] | None = None
    settings = parse_settings(rules)
    engine = Engine.from_settings(settings, sink=keep)
    for lo, hi in itertools.pairwise(bounds):
        engine = Engine.from_settings(settings, sink=keep)
        if state is not None:
            engine.restore(orjson.loads(orjson.dumps(state)))
        engine.process_many(events[lo:hi])
        state = engine.snapshot()
    engine.advance_to(epoch(days=90))
    return TestRun(latest, [], engine.open_records(), engine)


@SETTINGS
@given(events=event_sets(), seed=st.integers(0, 2**32), data=st.data())
def test_batches_with_snapshot_and_restore_give_the_same_outcomes(
    events: list[Event], seed: int, data: st.DataObject
) -> None:
    ordered = arrival_order(events, random.Random(seed))
    cuts = data.draw(st.lists(st.integers(0, len(ordered)), max_size=4))
    assert _run_in_batches_with_restarts(ordered, cuts).canonical() == canonical(ordered)


# Within the correction horizon: any arrival order at all (these events span hours, the
# horizon is 30 days), re-deliveries after the dedupe window (here one minute), and the
# final ledger is the in-order one.
HORIZON_RULES = parse_settings("engine:\n  dedupe_window: 1m\n", "<test>")


def final_ledger(events: list[Event], as_of: str | None) -> list[tuple[Any, ...]]:
    return run_events(events, rules=HORIZON_RULES, as_of=as_of).final_ledger()


@SETTINGS
@given(events=event_sets(), seed=st.integers(0, 2**32))
def test_any_arrival_order_within_the_horizon_gives_the_in_order_final_ledger(
    events: list[Event], seed: int
) -> None:
    rng = random.Random(seed)
    in_time_order = sorted(events, key=lambda e: (e.time, e.id))
    arrival = list(events)
    rng.shuffle(arrival)
    for e in rng.sample(events, k=min(len(events), 6)):  # re-sent, anywhere later
        arrival.insert(rng.randint(arrival.index(e) + 1, len(arrival)), e)
    assert final_ledger(arrival, FAR) == final_ledger(in_time_order, FAR)
    got, want = final_ledger(arrival, None), final_ledger(in_time_order, None)
    assert _started_sessions(got, want) == _started_sessions(want, got)


def _started_sessions(ledger: list[tuple[Any, ...]], other: list[tuple[Any, ...]]) -> list[Any]:
    """``ledger`` without the clinic sessions still open in either ledger. The known
    limit of clinic-overbooked (docs/detectors.md): before a session starts, a late event
    can leave a decision reported (a withdrawn overbooking, or a "met" whose start moved
    later) where an in-order delivery shows the session still open; from its start on,
    the ledgers agree (the FAR comparison)."""
    open_ = {r[1] for r in (*ledger, *other) if r[0] == "clinic-overbooked" and r[2] == "open"}
    return [r for r in ledger if r[1] not in open_]


@SETTINGS
@given(events=event_sets(), seed=st.integers(0, 2**32), data=st.data())
def test_restarts_within_the_horizon_keep_the_in_order_final_ledger(
    events: list[Event], seed: int, data: st.DataObject
) -> None:
    arrival = list(events)
    random.Random(seed).shuffle(arrival)
    cuts = data.draw(st.lists(st.integers(0, len(arrival)), max_size=4))
    rules = "engine:\n  dedupe_window: 1m\n"
    got = _run_in_batches_with_restarts(arrival, cuts, rules).final_ledger()
    assert got == final_ledger(sorted(events, key=lambda e: (e.time, e.id)), FAR)


# Across the horizon: a horizon of 3 hours over 12 hours of events, so that what the
# horizon passes is forgotten while events are still arriving (closing events kept on
# their opportunity, opportunities and tokens dropped, ids rotated). Any arrival order in
# which no event comes more than the horizon behind the newest one gives the in-order
# final ledger.
SHORT_HORIZON = 3 * 3600.0
SHORT_HORIZON_TEXT = (
    "engine:\n  dedupe_window: 1m\n  late_retention: 1h\n  correction_horizon: 3h\n"
)
SHORT_HORIZON_RULES = parse_settings(SHORT_HORIZON_TEXT, "<test>")


def within_horizon(events: list[Event], rng: random.Random, resent: int) -> list[Event]:
    """A random arrival order in which every event comes at most the horizon behind the
    newest event time seen before it, with ``resent`` events delivered again later (also
    within the horizon): delivering by time + jitter (jitter < horizon) guarantees it."""
    arrival = sorted(
        events, key=lambda e: (e.time + rng.uniform(0, SHORT_HORIZON - 60), rng.random())
    )
    for e in rng.sample(events, k=min(len(events), resent)):
        first = arrival.index(e)
        newest = max(x.time for x in arrival[: first + 1])
        last = first + 1
        while last < len(arrival) and max(newest, arrival[last].time) - e.time < SHORT_HORIZON - 60:
            newest = max(newest, arrival[last].time)
            last += 1
        arrival.insert(rng.randint(first + 1, last), e)
    newest = float("-inf")
    for e in arrival:
        newest = max(newest, e.time)
        assert e.time > newest - SHORT_HORIZON
    return arrival


@SETTINGS
@given(events=event_sets(hours=12, most=60), seed=st.integers(0, 2**32), data=st.data())
def test_any_arrival_order_across_a_short_horizon_gives_the_in_order_final_ledger(
    events: list[Event], seed: int, data: st.DataObject
) -> None:
    rng = random.Random(seed)
    arrival = within_horizon(events, rng, resent=6)
    in_time_order = sorted(events, key=lambda e: (e.time, e.id))
    want = run_events(in_time_order, rules=SHORT_HORIZON_RULES, as_of=FAR)
    got = run_events(arrival, rules=SHORT_HORIZON_RULES, as_of=FAR)
    assert got.engine.stats.refused == {}  # every event was used
    assert got.final_ledger() == want.final_ledger()


@SETTINGS
@given(events=event_sets(hours=12, most=60), seed=st.integers(0, 2**32), data=st.data())
def test_restarts_across_a_short_horizon_keep_the_in_order_final_ledger(
    events: list[Event], seed: int, data: st.DataObject
) -> None:
    arrival = within_horizon(events, random.Random(seed), resent=6)
    cuts = data.draw(st.lists(st.integers(0, len(arrival)), max_size=4))
    got = _run_in_batches_with_restarts(arrival, cuts, SHORT_HORIZON_TEXT).final_ledger()
    in_time_order = sorted(events, key=lambda e: (e.time, e.id))
    want = run_events(in_time_order, rules=SHORT_HORIZON_RULES, as_of=FAR).final_ledger()
    assert got == want
