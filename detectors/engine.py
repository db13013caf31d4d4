"""The detection engine: keyed state in event time, driven by a watermark.

How it works (the exact rules are in ``docs/detectors.md``):

- Every event is de-duplicated by ``id``, then routed by ``type`` to the detectors that
  read it. The routing table is built once, so an event costs only what its readers do.
- The **watermark** is the highest event time seen minus ``allowed_lateness``. Nothing is
  decided from the wall clock: decisions happen when the watermark passes a time, so the
  same events give the same outcomes whatever their arrival order (within the lateness)
  and however they are batched.
- Expectations (``ExpectationDetector``) are run here: each opportunity remembers the
  earliest closing and voiding event that count for it and is scheduled at the next
  watermark time at which it can be decided (a heap of times, each with its
  opportunities in scheduling order). Closing events that arrive before
  their opening event are kept as *tokens* until the watermark passes them.
- Violation detectors keep their own state and are told when the watermark moves.
- ``snapshot()`` / ``Engine.restore()`` turn the whole state into plain data and back,
  so a runtime can checkpoint it.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

from detectors.contract import Detector, ExpectationDetector, ViolationDetector
from detectors.errors import ConfigError
from detectors.events import BUILTIN_TYPES, Event
from detectors.records import Outcome, failure_id

__all__ = ["Engine", "EngineStats", "OutcomeSink"]

INF = float("inf")
NEG_INF = float("-inf")

OutcomeSink = Callable[[Outcome], None]

#: Watermark progress (seconds) between housekeeping rounds (see ``Engine._housekeeping``).
HOUSEKEEPING_STEP = 30.0

# Routing roles.
_OPEN, _CLOSE, _VOID, _OTHER = 0, 1, 2, 3


@dataclass
class EngineStats:
    """Counters the metrics layer reads at scrape time (no cost on the event path)."""

    events_by_type: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    late_events: int = 0
    opened: dict[str, int] = field(default_factory=dict)
    open_now: dict[str, int] = field(default_factory=dict)
    outcomes: dict[tuple[str, str, str], int] = field(default_factory=dict)


Tokens = dict[str, list[tuple[float, str]]]  # key -> [(event time, event id)]


class _DetState:
    """An expectation detector's state, reached straight from the routing table.

    ``open``: key -> opportunities (open, or missed and still watched for a late close).
    Tokens are closing/voiding events kept for opening events that may still arrive, in
    two generations: new ones go to the current one, lookups read both, and each
    rotation drops the older one wholesale (see ``Engine._housekeeping``).
    """

    __slots__ = (
        "all_close",
        "all_void",
        "close_old",
        "close_tokens",
        "det",
        "key_ref",
        "name",
        "open",
        "void_old",
        "void_tokens",
    )

    def __init__(self, det: ExpectationDetector, open_: dict[str, list[_Expectation]]) -> None:
        self.det = det
        self.name = det.name
        self.open = open_
        self.close_tokens: Tokens = {}
        self.close_old: Tokens = {}
        self.void_tokens: Tokens = {}
        self.void_old: Tokens = {}
        # Fast paths for hooks a detector leaves as the contract's defaults (the engine
        # then skips the call; a detector that overrides them is called as usual).
        cls = type(det)
        self.key_ref = det.key_ref if cls.key_of is ExpectationDetector.key_of else None
        self.all_close = cls.is_close is ExpectationDetector.is_close
        self.all_void = cls.is_void is ExpectationDetector.is_void

    def rotate(self) -> None:
        """Start a new token generation; the oldest is forgotten."""
        self.close_old, self.close_tokens = self.close_tokens, {}
        self.void_old, self.void_tokens = self.void_tokens, {}


class _Expectation:
    """One open (or missed-but-still-watched) opportunity of an expectation rule."""

    __slots__ = (
        "attrs",
        "b",
        "b_id",
        "det",
        "due",
        "eid",
        "key",
        "missed",
        "patient",
        "refs",
        "t_a",
        "wake",
        "z",
        "z_id",
    )

    def __init__(
        self,
        det: ExpectationDetector,
        key: str,
        eid: str,
        t_a: float,
        due: float,
        patient: str | None,
        refs: dict[str, str],
        attrs: dict[str, Any],
    ) -> None:
        self.det = det
        self.key = key
        self.eid = eid
        self.t_a = t_a
        self.due = due
        self.patient = patient
        self.refs = refs
        self.attrs = attrs
        self.b = INF
        self.b_id = ""
        self.z = INF
        self.z_id = ""
        self.missed = False
        self.wake = INF


class Engine:
    """Runs detectors over canonical events in event time.

    ``allowed_lateness``, ``late_retention`` and ``dedupe_window`` are seconds.
    ``sink`` receives every outcome record (the latest record per ``failure_id`` wins).
    ``site_labels``: the only ``attrs.site`` values that may become a metrics label;
    anything else is counted as ``other`` (labels must stay bounded and never carry data).
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        *,
        allowed_lateness: float = 600.0,
        late_retention: float = 30 * 86400.0,
        dedupe_window: float = 7 * 86400.0,
        sink: OutcomeSink | None = None,
        site_labels: Iterable[str] = (),
        on_failure: OutcomeSink | None = None,
    ) -> None:
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ConfigError(f"detector names must be unique, got {names}")
        # Each engine gets its own copies: violation detectors carry state, and one
        # Settings object may build several engines (a worker per partition, tests).
        self.detectors = [copy.deepcopy(d) for d in detectors]
        self.allowed_lateness = float(allowed_lateness)
        self.late_retention = float(late_retention)
        self.dedupe_window = float(dedupe_window)
        self.sink = sink
        self.on_failure = on_failure
        self.site_labels = frozenset(site_labels)
        self.watermark = NEG_INF
        self.max_time = NEG_INF
        self.stats = EngineStats()
        self._counts = self.stats.events_by_type  # the per-event counter, reached directly

        self._exp: list[ExpectationDetector] = []
        self._vio: list[ViolationDetector] = []
        self._routes: dict[str, list[tuple[int, Any, _DetState | None]]] = {}
        for d in self.detectors:
            self.stats.opened[d.name] = 0
            self.stats.open_now[d.name] = 0
            if isinstance(d, ExpectationDetector):
                self._exp.append(d)
            elif isinstance(d, ViolationDetector):
                self._vio.append(d)
            else:
                raise ConfigError(f"{d!r} is neither an expectation nor a violation detector")
        # det name -> key -> opportunities (open or missed-and-watched)
        self._open: dict[str, dict[str, list[_Expectation]]] = {d.name: {} for d in self._exp}
        self._states: dict[str, _DetState] = {}
        # The routing table: event type -> (role, detector, its state). Built once, so an
        # event costs only what its readers do. State dicts are shared, never replaced.
        for d in self.detectors:
            if isinstance(d, ExpectationDetector):
                st = self._states[d.name] = _DetState(d, self._open[d.name])
                for role, types in ((_OPEN, d.opens), (_CLOSE, d.closes), (_VOID, d.voids)):
                    for t in types:
                        self._routes.setdefault(t, []).append((role, d, st))
            else:
                for t in d.reads:
                    self._routes.setdefault(t, []).append((_OTHER, d, None))
        self.known_types = frozenset(self._routes)
        # The schedule: every wake time in use, in a heap of plain floats (cheap to
        # compare), each with its opportunities in the order they were scheduled.
        self._heap: list[float] = []
        self._at: dict[float, list[_Expectation]] = {}
        # A token is needed until the watermark passes its time, at most the allowed
        # lateness after it arrived; two generations rotated at least that far apart keep
        # every needed token (and forget the rest in one go, with no per-token work).
        self._token_rotate_at = NEG_INF
        # Seen event ids, in two generations rotated every dedupe_window of watermark
        # progress: every id is remembered for at least that long.
        self._seen_now: set[str] = set()
        self._seen_old: set[str] = set()
        self._seen_rotate_at = NEG_INF
        self._fire_now = False
        self._next_housekeeping = NEG_INF

    # ------------------------------------------------------------------ input

    def process(self, ev: Event) -> None:
        """Take one event (any arrival order). Outcomes go to the sink as they are decided."""
        eid = ev.id
        seen = self._seen_now
        if eid in seen or eid in self._seen_old:
            self.stats.duplicates += 1
            return
        seen.add(eid)
        t = ev.time
        etype = ev.type
        counts = self._counts
        routes = self._routes.get(etype)
        if routes is None:
            # built-in types no detector reads keep their name (a bounded set); others: other
            name = etype if etype in BUILTIN_TYPES else "other"
            counts[name] = counts.get(name, 0) + 1
        else:
            counts[etype] = counts.get(etype, 0) + 1
            for role, det, st in routes:
                if role == _OPEN:
                    self._on_open(det, st, ev)  # type: ignore[arg-type]
                elif role == _OTHER:
                    det.on_event(ev, self)
                else:
                    self._on_close(det, st, ev, role)  # type: ignore[arg-type]
        if t > self.max_time:
            self.max_time = t
            wm = t - self.allowed_lateness
            if wm > self.watermark:
                # most events move the watermark without anything falling due: skip the call
                heap = self._heap
                if (heap and heap[0] <= wm) or wm >= self._next_housekeeping:
                    self._advance(wm)
                    return
                self.watermark = wm
        elif t < self.watermark:
            self.stats.late_events += 1
        if self._fire_now:
            self._advance(self.watermark)

    def process_many(self, events: Iterable[Event]) -> None:
        """Process events in the order given."""
        process = self.process
        for ev in events:
            process(ev)

    def advance_to(self, time: float) -> None:
        """Move the watermark to ``time`` (epoch seconds, UTC) if that is later, deciding
        everything due by then. Used for ``--as-of`` and by live-mode ticks."""
        if time > self.watermark:
            self._advance(time)
        self._housekeeping(self.watermark)

    # ----------------------------------------------------------- expectations

    def _on_open(self, det: ExpectationDetector, st: _DetState, ev: Event) -> None:
        due = det.deadline(ev)
        if due is None:
            return
        key_ref = st.key_ref
        key = ev.refs.get(key_ref) if key_ref is not None else det.key_of(ev)
        if key is None:
            return
        t_a = ev.time
        exp = _Expectation(det, key, ev.id, t_a, due, ev.patient, ev.refs, det.carried_attrs(ev))
        # closing/voiding events that came before this opening event (out of order)
        toks = st.close_tokens.get(key)
        old = st.close_old.get(key)
        if toks or old:
            for tt, tid in (toks or []) + (old or []):
                if t_a <= tt and (tt < exp.b or (tt == exp.b and tid < exp.b_id)):
                    exp.b, exp.b_id = tt, tid
        toks = st.void_tokens.get(key)
        old = st.void_old.get(key)
        if toks or old:
            for tt, tid in (toks or []) + (old or []):
                if t_a <= tt and (tt < exp.z or (tt == exp.z and tid < exp.z_id)):
                    exp.z, exp.z_id = tt, tid
        by_key = st.open
        lst = by_key.get(key)
        if lst is None:
            by_key[key] = [exp]
        else:
            lst.append(exp)
        stats = self.stats
        name = st.name
        stats.opened[name] += 1
        stats.open_now[name] += 1
        # first scheduling (``_schedule`` for a new opportunity, inline: every open pays it)
        wake = exp.b if exp.b <= exp.z else exp.z
        if due < wake:
            wake = due
        exp.wake = wake
        lst = self._at.get(wake)
        if lst is None:
            self._at[wake] = [exp]
            heappush(self._heap, wake)
        else:
            lst.append(exp)
        if wake <= self.watermark:
            self._fire_now = True

    def _on_close(self, det: ExpectationDetector, st: _DetState, ev: Event, role: int) -> None:
        if role == _CLOSE:
            if not st.all_close and not det.is_close(ev):
                return
        elif not st.all_void and not det.is_void(ev):
            return
        key_ref = st.key_ref
        key = ev.refs.get(key_ref) if key_ref is not None else det.key_of(ev)
        if key is None:
            return
        t = ev.time
        eid = ev.id
        exps = st.open.get(key)
        if exps:
            for exp in exps:
                if exp.t_a <= t:
                    # earliest wins; equal times go to the smaller id, so the evidence
                    # does not depend on arrival order either
                    if role == _CLOSE:
                        if t < exp.b or (t == exp.b and eid < exp.b_id):
                            exp.b, exp.b_id = t, eid
                            self._schedule(exp)
                    elif t < exp.z or (t == exp.z and eid < exp.z_id):
                        exp.z, exp.z_id = t, eid
                        self._schedule(exp)
        if t >= self.watermark:
            toks = st.close_tokens if role == _CLOSE else st.void_tokens
            lst = toks.get(key)
            if lst is None:
                toks[key] = [(t, eid)]
            else:
                lst.append((t, eid))

    def _schedule(self, exp: _Expectation) -> None:
        """(Re)schedule ``exp`` at the next watermark time it can be decided: its earliest
        counting close or void, else its deadline (for a missed one, the end of the
        retention). A later time than the scheduled one changes nothing."""
        wake = exp.b if exp.b <= exp.z else exp.z
        limit = exp.due + self.late_retention if exp.missed else exp.due
        if limit < wake:
            wake = limit
        old = exp.wake
        if wake < old:
            at = self._at
            if old != INF:  # off its old time (``_unschedule``, inline: closes pay it)
                was = at[old]
                if len(was) == 1:
                    del at[old]
                else:
                    was.remove(exp)
            exp.wake = wake
            lst = at.get(wake)
            if lst is None:
                at[wake] = [exp]
                heappush(self._heap, wake)
            else:
                lst.append(exp)
            if wake <= self.watermark:
                self._fire_now = True

    def _unschedule(self, exp: _Expectation) -> None:
        """Take ``exp`` off its wake time. The time itself stays in the heap (a plain
        float, skipped when popped) until housekeeping rebuilds the heap."""
        lst = self._at.get(exp.wake)
        if lst is not None:
            if len(lst) == 1 and lst[0] is exp:
                del self._at[exp.wake]
            elif exp in lst:
                lst.remove(exp)
        exp.wake = INF

    def _advance(self, wm: float) -> None:
        self._fire_now = False
        self.watermark = wm
        heap = self._heap
        at = self._at
        # self._resolve, not a local alias: compiled (setup.py), a method called on self
        # is a direct C call, while an alias goes through Python's call protocol
        while heap and heap[0] <= wm:
            wake = heappop(heap)
            due = at.pop(wake, None)
            if due is None:
                continue  # nothing is scheduled at this time any more
            for exp in due:
                exp.wake = INF
                self._resolve(exp, wm)
        if wm >= self._next_housekeeping:
            self._housekeeping(wm)

    def _housekeeping(self, wm: float) -> None:
        """Forget tokens and event ids the watermark has passed, and let the violation
        detectors catch up. Done in steps of ``HOUSEKEEPING_STEP`` seconds of watermark,
        not per event: it only decides *when* those things happen, never *what*."""
        self._next_housekeeping = wm + HOUSEKEEPING_STEP
        if len(self._heap) > 2 * len(self._at) + 4096:
            # times nothing is scheduled at any more (opportunities decided before their
            # deadline): rebuild the heap from the times in use
            self._heap = list(self._at)
            heapq.heapify(self._heap)
        if wm >= self._token_rotate_at:
            for st in self._states.values():
                st.rotate()
            self._token_rotate_at = wm + self.allowed_lateness + HOUSEKEEPING_STEP
        if wm >= self._seen_rotate_at:
            self._seen_old, self._seen_now = self._seen_now, set()
            self._seen_rotate_at = wm + self.dedupe_window
        for det in self._vio:
            det.on_watermark(self)

    def _resolve(self, exp: _Expectation, wm: float) -> None:
        by_b = exp.b <= exp.z
        first = exp.b if by_b else exp.z
        due = exp.due
        if not exp.missed:
            if first <= due:  # most opportunities end here (``_finish``, inline)
                self.stats.open_now[exp.det.name] -= 1
                if by_b:
                    self._emit(self._record(exp, "met", wm, exp.b, exp.b_id))
                else:
                    self._emit(self._record(exp, "void", wm, exp.z, exp.z_id))
                self._drop(exp)
                return
            # the watermark passed the deadline with nothing that counts before it
            exp.missed = True
            self.stats.open_now[exp.det.name] -= 1
            self._emit(self._record(exp, "missed", wm, None, None))
            # Watch on: a close before the retention ends makes it late. Even when the
            # earliest known event is a void after the deadline, a close between the
            # deadline and that void may still arrive (within the lateness), so the
            # decision waits until the watermark has passed the void too.
            self._schedule(exp)
            return
        if by_b and exp.b <= wm:
            if exp.b > due + self.late_retention:
                self._drop(exp)  # closed only after the retention: it stays missed
            else:
                self._finish(exp, "met" if exp.b <= due else "late", wm, "missed")
        elif not by_b and exp.z <= wm:
            if exp.z <= due:
                self._finish(exp, "void", wm, "missed")
            else:
                self._drop(exp)
        elif wm >= due + self.late_retention:
            self._drop(exp)
        else:
            self._schedule(exp)

    def _finish(self, exp: _Expectation, outcome: str, wm: float, amended_from: str | None) -> None:
        if amended_from is None:
            self.stats.open_now[exp.det.name] -= 1
        closed_at = exp.b if outcome in ("met", "late") else exp.z
        closer = exp.b_id if outcome in ("met", "late") else exp.z_id
        self._emit(self._record(exp, outcome, wm, closed_at, closer, amended_from))
        self._drop(exp)

    def _drop(self, exp: _Expectation) -> None:
        if exp.wake != INF:
            self._unschedule(exp)
        by_key = self._open[exp.det.name]
        lst = by_key.get(exp.key)
        if lst is not None:
            lst.remove(exp)
            if not lst:
                del by_key[exp.key]

    def _record(
        self,
        exp: _Expectation,
        outcome: str,
        wm: float,
        closed_at: float | None,
        closer: str | None,
        amended_from: str | None = None,
    ) -> Outcome:
        det = exp.det
        name = det.name
        o = Outcome(  # positional: this runs for every decided opportunity
            failure_id(name, exp.key, exp.eid),
            name,
            outcome,
            exp.key,
            exp.patient,
            exp.refs,
            exp.t_a,
            exp.due,
            closed_at,
            wm,
            [exp.eid, closer] if closer else [exp.eid],
            exp.attrs,
            "",
            amended_from,
        )
        o.summary = det.summary(o)
        return o

    # ---------------------------------------------------------------- output

    def emit(self, outcome: Outcome) -> None:
        """Record an outcome (also the ``Context.emit`` of violation detectors)."""
        self._emit(outcome)

    def _emit(self, o: Outcome) -> None:
        site = o.attrs.get("site")
        label = site if site in self.site_labels else "other"
        # an amendment is keyed "from>to" so metrics count each opportunity's first
        # decision once and its amendments apart (detectors.metrics)
        amended = o.amended_from
        k = (o.detector, o.outcome if amended is None else f"{amended}>{o.outcome}", label)
        outs = self.stats.outcomes
        outs[k] = outs.get(k, 0) + 1
        if self.on_failure is not None and o.outcome in ("late", "missed", "violation"):
            self.on_failure(o)
        if self.sink is not None:
            self.sink(o)

    def open_records(self) -> list[Outcome]:
        """Opportunities not yet decided, as records with outcome ``open`` (sorted)."""
        out: list[Outcome] = []
        wm = self.watermark
        self._housekeeping(wm)  # let violation detectors decide what the watermark passed
        for by_key in self._open.values():
            for lst in by_key.values():
                for exp in lst:
                    if not exp.missed:
                        out.append(self._record(exp, "open", wm, None, None))
        for det in self._vio:
            out.extend(det.open_records(wm))
        out.sort(key=lambda o: (o.detector, o.failure_id))
        return out

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain data (JSON-able but for ``inf``, which JSON lacks:
        infinities are written as ``None``)."""

        def f(x: float) -> float | None:
            return None if x in (INF, NEG_INF) else x

        exps = []
        for by_key in self._open.values():
            for lst in by_key.values():
                for e in lst:
                    exps.append(
                        [
                            e.det.name,
                            e.key,
                            e.eid,
                            e.t_a,
                            e.due,
                            e.patient,
                            e.refs,
                            e.attrs,
                            f(e.b),
                            e.b_id,
                            f(e.z),
                            e.z_id,
                            e.missed,
                        ]
                    )
        tokens = [
            [name, role, gen, key, tt, tid]
            for name, st in self._states.items()
            for role, gen, toks in (
                (_CLOSE, 0, st.close_tokens),
                (_CLOSE, 1, st.close_old),
                (_VOID, 0, st.void_tokens),
                (_VOID, 1, st.void_old),
            )
            for key, lst in toks.items()
            for tt, tid in lst
        ]
        return {
            "version": 2,
            "watermark": f(self.watermark),
            "max_time": f(self.max_time),
            "expectations": exps,
            "tokens": tokens,
            "token_rotate_at": f(self._token_rotate_at),
            "seen": sorted(self._seen_now),
            "seen_old": sorted(self._seen_old),
            "seen_rotate_at": f(self._seen_rotate_at),
            "stats": {
                "events_by_type": dict(self.stats.events_by_type),
                "duplicates": self.stats.duplicates,
                "late_events": self.stats.late_events,
                "opened": dict(self.stats.opened),
                "open_now": dict(self.stats.open_now),
                "outcomes": [[*k, v] for k, v in self.stats.outcomes.items()],
            },
            "detectors": {d.name: d.snapshot() for d in self._vio},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace this engine's state with ``state`` from ``snapshot()``. The engine must
        have been built with the same detectors (by name)."""
        if state.get("version") != 2:
            raise ConfigError(
                "unknown engine snapshot version; was it written by a newer Carewatch?"
            )

        def g(x: float | None, default: float) -> float:
            return default if x is None else float(x)

        self.watermark = g(state["watermark"], NEG_INF)
        self.max_time = g(state["max_time"], NEG_INF)
        by_name = {d.name: d for d in self._exp}
        for by_key in self._open.values():
            by_key.clear()  # cleared in place: the routing table holds these dicts
        self._heap = []
        self._at = {}
        for name, key, eid, t_a, due, patient, refs, attrs, b, b_id, z, z_id, missed in state[
            "expectations"
        ]:
            det = by_name.get(name)
            if det is None:
                continue  # a detector switched off since the snapshot
            e = _Expectation(det, key, eid, t_a, due, patient, refs, attrs)
            e.b, e.b_id, e.z, e.z_id, e.missed = g(b, INF), b_id, g(z, INF), z_id, missed
            self._open[name].setdefault(key, []).append(e)
            self._schedule(e)
        for st in self._states.values():
            st.rotate()
            st.rotate()
        for name, role, gen, key, tt, tid in state["tokens"]:
            found = self._states.get(name)
            if found is not None:
                if role == _CLOSE:
                    toks = found.close_old if gen else found.close_tokens
                else:
                    toks = found.void_old if gen else found.void_tokens
                toks.setdefault(key, []).append((tt, tid))
        self._token_rotate_at = g(state["token_rotate_at"], NEG_INF)
        self._seen_now = set(state["seen"])
        self._seen_old = set(state["seen_old"])
        self._seen_rotate_at = g(state["seen_rotate_at"], NEG_INF)
        saved = state["stats"]
        self.stats = EngineStats(
            events_by_type=dict(saved["events_by_type"]),
            duplicates=saved["duplicates"],
            late_events=saved["late_events"],
            opened={**self.stats.opened, **saved["opened"]},
            open_now={**self.stats.open_now, **saved["open_now"]},
            outcomes={(a, b, c): v for a, b, c, v in saved["outcomes"]},
        )
        self._counts = self.stats.events_by_type
        for d in self._vio:
            if d.name in state["detectors"]:
                d.restore(state["detectors"][d.name])
