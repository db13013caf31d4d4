"""How long event ids are remembered: for at least ``dedupe_window`` of watermark
progress (a re-delivery within it is a duplicate, another event under the id a
conflict), and, with steady traffic, not more than a sixteenth of the window longer;
whatever the arrival order, and across a snapshot and restore."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.engine import ID_CONFLICT, Engine
from detectors.events import Event
from detectors.rules import parse_settings

WINDOW = 3600.0  # one hour
SETTINGS = parse_settings("engine:\n  dedupe_window: 1h\n", "<test>")


def probe(n: int, t: float) -> Event:
    return Event(f"e{n}", "appointment.booked", t, "P1", {"appointment": f"A{n}"}, {})


@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=900.0), min_size=1, max_size=60),
    back=st.lists(st.floats(min_value=0.0, max_value=1200.0), min_size=1, max_size=60),
    again=st.integers(min_value=0, max_value=59),
    restart=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_an_id_is_remembered_for_the_window_and_not_much_longer(
    gaps: list[float], back: list[float], again: int, restart: bool
) -> None:
    refused: list[str] = []
    engine = Engine.from_settings(SETTINGS, on_reject=lambda _ev, kind, _why: refused.append(kind))
    # events moving time on, each possibly behind the newest (late arrivals)
    t, first_wm = 0.0, {}
    events = []
    for n, gap in enumerate(gaps):
        t += gap
        events.append(probe(n, max(0.0, t - back[n % len(back)])))
    for ev in events:
        engine.process(ev)
        first_wm.setdefault(ev.id, engine.watermark)
    if restart:
        state = engine.snapshot()
        engine = Engine.from_settings(
            SETTINGS, on_reject=lambda _ev, kind, _why: refused.append(kind)
        )
        engine.restore(state)
    picked = events[again % len(events)]
    wm = engine.watermark
    since = wm - first_wm[picked.id]
    before = (engine.stats.duplicates, len(refused))
    # the same event again: a duplicate while remembered
    engine.process(picked)
    remembered = engine.stats.duplicates == before[0] + 1
    if since < WINDOW:
        assert remembered, (since, picked)
        # another event under the id: a conflict, refused
        engine.process(Event(picked.id, picked.type, picked.time + 1.0, "P1", {}, {}))
        assert refused[before[1] :] == [ID_CONFLICT]
    # nothing is remembered long past the window (a batch is closed at the first
    # housekeeping after its sixteenth of the window; a jump of the watermark closes it
    # late, so two windows on nothing is left)
    engine.advance_to(wm + WINDOW * 1.1)
    engine.advance_to(wm + WINDOW * 2.3)
    assert all(not batch for batch in engine.snapshot()["seen"])


def test_a_long_run_keeps_about_one_window_of_ids() -> None:
    engine = Engine.from_settings(SETTINGS)
    per_minute = 10
    for minute in range(6 * 60):  # six hours, ten events a minute
        for k in range(per_minute):
            engine.process(probe(minute * per_minute + k, minute * 60.0 + k))
    kept = sum(len(batch) for batch in engine.snapshot()["seen"])
    # the last hour's ids, plus at most a sixteenth of an hour's (and the lateness)
    assert 60 * per_minute <= kept <= (60 + 60 / 16 + 11) * per_minute
