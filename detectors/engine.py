"""The detection engine: keyed state in event time, driven by a watermark.

How it works (the exact rules, and the guarantee, are in ``docs/detectors.md``):

- Every event is de-duplicated by ``id`` (the same id with different content is an
  *id conflict*, rejected), then routed by ``type`` to the detectors that read it. The
  routing table is built once, so an event costs only what its readers do.
- The **watermark** is the highest event time seen minus ``allowed_lateness``. Nothing is
  decided from the wall clock: decisions happen when the watermark passes a time.
- Two horizons. ``allowed_lateness`` says when an opportunity is *first* decided. The
  **correction horizon** says how long everything that could still change a decision is
  kept: opportunities (decided ones too), closing and voiding events whose opening event
  has not arrived, and what violation detectors need. An event up to the horizon behind
  the watermark is used, and a decision it changes is amended under the same
  ``failure_id``; an event further behind is rejected (``beyond-horizon``), never used.
  So the *final* ledger (the latest record per ``failure_id``) is the same for any
  arrival order within the horizon as for the events delivered once in time order.
- Expectations (``ExpectationDetector``) are run here: each opportunity remembers the
  earliest closing and voiding event that count for it and is scheduled at the next
  watermark time at which its outcome can change (a heap of times, each with its
  opportunities in scheduling order).
- An opening event that arrives when its decision time has already passed is decided
  at the next explicit ``advance_to`` (a live tick, ``--as-of``, the end of the input),
  not at once: the closing events queued right behind it in a backlog count first.
- Violation detectors keep their own state and are told when the watermark moves.
- ``snapshot()`` / ``Engine.restore()`` turn the whole state into plain data and back,
  so a runtime can checkpoint it.
"""

from __future__ import annotations

import copy
import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

from detectors.contract import (
    DEFAULT_CLOCK,
    DEFAULT_TIMEZONE,
    Detector,
    ExpectationDetector,
    LocalClock,
    ViolationDetector,
)
from detectors.errors import ConfigError
from detectors.events import BUILTIN_TYPES, Event, format_time
from detectors.records import Outcome, failure_id
from detectors.rules import ENGINE_DEFAULTS

__all__ = ["BEYOND_HORIZON", "ID_CONFLICT", "Engine", "EngineStats", "OutcomeSink", "RejectSink"]

INF = float("inf")
NEG_INF = float("-inf")

OutcomeSink = Callable[[Outcome], None]
#: Told of an event the engine refuses: ``(event, kind, reason)``.
RejectSink = Callable[[Event, str, str], None]

#: Dead-letter kind of an event further behind the watermark than the correction horizon.
BEYOND_HORIZON = "beyond-horizon"
#: Dead-letter kind of an event whose id was used before by a different event.
ID_CONFLICT = "id-conflict"

#: Watermark progress (seconds) between housekeeping rounds (see ``Engine._housekeeping``).
HOUSEKEEPING_STEP = 30.0

# Routing roles.
_OPEN, _CLOSE, _VOID, _OTHER, _PATIENT_VOID = 0, 1, 2, 3, 4

_UNDECIDED = ""  # an opportunity's ``state`` before its first decision
#: At most this many distinct carried-attrs dicts are shared (``Engine._shared``); beyond,
#: each opportunity keeps its own (only memory differs).
_ATTRS_CACHE_MAX = 100_000


@dataclass
class EngineStats:
    """Counters the metrics layer reads at scrape time (no cost on the event path)."""

    events_by_type: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    late_events: int = 0
    opened: dict[str, int] = field(default_factory=dict)
    open_now: dict[str, int] = field(default_factory=dict)
    outcomes: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: events refused by the engine, by dead-letter kind (``beyond-horizon``, ``id-conflict``)
    refused: dict[str, int] = field(default_factory=dict)
    #: records that amended an earlier record of the same opportunity
    amendments: int = 0


class _Expiry:
    """Items to forget once the watermark is a horizon past their time, in time buckets:
    adding costs one list append, and forgetting touches each item once."""

    __slots__ = ("buckets", "heap", "width")

    def __init__(self, width: float) -> None:
        self.width = width
        self.buckets: dict[int, list[Any]] = {}
        self.heap: list[int] = []

    def add(self, t: float, item: Any) -> None:
        i = int(t // self.width)
        lst = self.buckets.get(i)
        if lst is None:
            self.buckets[i] = [item]
            heappush(self.heap, i)
        else:
            lst.append(item)

    def due(self, line: float) -> list[Any]:
        """Take out every item of the buckets that end at or before ``line``."""
        out: list[Any] = []
        heap = self.heap
        while heap and (heap[0] + 1) * self.width <= line:
            out.extend(self.buckets.pop(heappop(heap)))
        return out

    def clear(self) -> None:
        self.buckets = {}
        self.heap = []


Token = tuple[float, str, str]  # (event time, event id, event type)
#: key -> its token, or a list of them when it has several (most keys have one, and a
#: token is kept for the whole correction horizon: a list each would cost a third more)
Tokens = dict[str, Token | list[Token]]


def _tokens(found: Token | list[Token]) -> list[Token]:
    return found if isinstance(found, list) else [found]


def _listed(found: _Expectation | list[_Expectation]) -> list[_Expectation]:
    return found if isinstance(found, list) else [found]


class _DetState:
    """An expectation detector's state, reached straight from the routing table.

    ``open``: key -> its opportunity, or a list when it has several (most keys have one),
    undecided or decided and still correctable.
    ``close_tokens`` / ``void_tokens``: every closing/voiding event within the horizon, by
    key, for opening events that may still arrive; but a closing event that is an
    opportunity's earliest is kept there only (most are: a result for its order), and
    goes back among the tokens when that opportunity gives it up (``_keep_close``).
    ``by_patient``: the opportunities of each patient, kept only for a detector that
    patient-level events void.
    """

    __slots__ = (
        "all_close",
        "all_void",
        "by_patient",
        "close_expiry",
        "close_tokens",
        "det",
        "key_ref",
        "name",
        "no_void_reason",
        "once",
        "open",
        "void_expiry",
        "void_tokens",
    )

    def __init__(
        self,
        det: ExpectationDetector,
        open_: dict[str, _Expectation | list[_Expectation]],
        width: float,
    ) -> None:
        self.det = det
        self.name = det.name
        self.open = open_
        self.close_tokens: Tokens = {}
        self.void_tokens: Tokens = {}
        # the key of each token, to forget it once the horizon has passed it
        self.close_expiry = _Expiry(width)
        self.void_expiry = _Expiry(width)
        self.by_patient: dict[str, list[_Expectation]] | None = {} if det.patient_voids else None
        self.once = bool(det.opens_once_per_key)
        # Fast paths for hooks a detector leaves as the contract's defaults (the engine
        # then skips the call; a detector that overrides them is called as usual).
        cls = type(det)
        self.key_ref = det.key_ref if cls.key_of is ExpectationDetector.key_of else None
        self.all_close = cls.is_close is ExpectationDetector.is_close
        self.all_void = cls.is_void is ExpectationDetector.is_void
        self.no_void_reason = cls.void_reason is ExpectationDetector.void_reason

    def add_token(self, role: int, key: str, t: float, eid: str, etype: str) -> None:
        """Keep a closing (``_CLOSE``) or voiding event of ``key`` for the horizon."""
        if role == _CLOSE:
            toks, expiry = self.close_tokens, self.close_expiry
        else:
            toks, expiry = self.void_tokens, self.void_expiry
        found = toks.get(key)
        if found is None:
            toks[key] = (t, eid, etype)
        elif isinstance(found, list):
            found.append((t, eid, etype))
        else:
            toks[key] = [found, (t, eid, etype)]
        expiry.add(t, key)


class _Expectation:
    """One opportunity of an expectation rule, from its opening until the correction
    horizon has passed every time that could still change it.

    ``opened``/``opening_id``/``opening_type``: the opening event; ``last_open``: the
    latest opening event time of the key it stands for (a detector that opens once per
    key takes later ones in, and is kept until the horizon has passed them, so that one
    delivered again is still recognised);
    ``closed``/``closer``/``closer_type``: the earliest counting closing event;
    ``voided``/``voider``/``voider_type``: the earliest counting voiding event (``INF``
    when none; the types name the evidence on a record); ``state``: the outcome last emitted (``""`` while undecided);
    ``wake``: the watermark time it is scheduled at (``INF``: not scheduled; ``-INF``:
    waiting for the next ``advance_to``, see ``Engine._on_open``). ``refs`` is ``None``
    when the opening event's refs were just the key (most are): an opportunity is kept
    for the whole correction horizon, and ``all_refs`` rebuilds them when needed.
    """

    __slots__ = (
        "attrs",
        "closed",
        "closer",
        "closer_type",
        "det",
        "due",
        "emitted_close",
        "key",
        "last_open",
        "opened",
        "opening_id",
        "opening_type",
        "patient",
        "refs",
        "state",
        "voided",
        "voider",
        "voider_type",
        "wake",
    )

    def __init__(
        self,
        det: ExpectationDetector,
        key: str,
        opening_id: str,
        opening_type: str,
        opened: float,
        due: float,
        patient: str | None,
        refs: dict[str, str] | None,
        attrs: dict[str, Any],
    ) -> None:
        self.det = det
        self.key = key
        self.opening_id = opening_id
        self.opening_type = opening_type
        self.opened = opened
        self.last_open = opened
        self.due = due
        self.patient = patient
        self.refs = refs
        self.attrs = attrs
        self.closed = INF
        self.closer: str | None = None
        self.closer_type = ""
        self.voided = INF
        self.voider: str | None = None
        self.voider_type = ""
        self.state = _UNDECIDED
        # closed_at of the last emitted record (-INF: none; NaN: emit the next one anyway)
        self.emitted_close = NEG_INF
        self.wake = INF

    def all_refs(self) -> dict[str, str]:
        """The opening event's refs."""
        refs = self.refs
        return {self.det.key_ref: self.key} if refs is None else refs


class Engine:
    """Runs detectors over canonical events in event time.

    ``allowed_lateness``, ``late_retention``, ``dedupe_window`` and
    ``correction_horizon`` are seconds. ``sink`` receives every outcome record (the
    latest record per ``failure_id`` wins). ``on_reject`` is told of every event the
    engine refuses (beyond the horizon, or an id conflict); they are counted in
    ``stats.refused`` either way. ``site_labels``: the only ``attrs.site`` values that may
    become a metrics label; anything else is counted as ``other`` (labels must stay
    bounded and never carry data).
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        *,
        allowed_lateness: float = ENGINE_DEFAULTS["allowed_lateness"].default,
        late_retention: float = ENGINE_DEFAULTS["late_retention"].default,
        dedupe_window: float = ENGINE_DEFAULTS["dedupe_window"].default,
        correction_horizon: float = ENGINE_DEFAULTS["correction_horizon"].default,
        timezone: str = DEFAULT_TIMEZONE,
        sink: OutcomeSink | None = None,
        site_labels: Iterable[str] = (),
        on_failure: OutcomeSink | None = None,
        on_reject: RejectSink | None = None,
    ) -> None:
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ConfigError(f"detector names must be unique, got {names}")
        # Each engine gets its own copies: violation detectors carry state, and one
        # Settings object may build several engines (a worker per partition, tests).
        self.detectors = [copy.deepcopy(d) for d in detectors]
        # times in sentences in the site's local time
        clock = LocalClock(timezone) if timezone != DEFAULT_TIMEZONE else DEFAULT_CLOCK
        for d in self.detectors:
            d.clock = clock
        self.allowed_lateness = float(allowed_lateness)
        self.late_retention = float(late_retention)
        self.dedupe_window = float(dedupe_window)
        self.horizon = float(correction_horizon)
        self.sink = sink
        self.on_failure = on_failure
        self.on_reject = on_reject
        self.site_labels = frozenset(site_labels)
        self.watermark = NEG_INF
        self.max_time = NEG_INF
        self.stats = EngineStats()
        self._counts = self.stats.events_by_type  # the per-event counter, reached directly
        width = max(60.0, self.horizon / 16)

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
                d.configure(correction_horizon=self.horizon)
            else:
                raise ConfigError(f"{d!r} is neither an expectation nor a violation detector")
        # det name -> key -> opportunities (undecided, or decided and still correctable)
        self._open: dict[str, dict[str, _Expectation | list[_Expectation]]] = {
            d.name: {} for d in self._exp
        }
        self._states: dict[str, _DetState] = {}
        # The routing table: event type -> (role, detector, its state). Built once, so an
        # event costs only what its readers do. State dicts are shared, never replaced.
        for d in self.detectors:
            if isinstance(d, ExpectationDetector):
                st = self._states[d.name] = _DetState(d, self._open[d.name], width)
                for role, types in (
                    (_OPEN, d.opens),
                    (_CLOSE, d.closes),
                    (_VOID, d.voids),
                    (_PATIENT_VOID, d.patient_voids),
                ):
                    for t in types:
                        self._routes.setdefault(t, []).append((role, d, st))
            else:
                for t in d.reads:
                    self._routes.setdefault(t, []).append((_OTHER, d, None))
        self.known_types = frozenset(self._routes)
        # each routed type's one string object: the types an opportunity or a token keeps
        # for its record's evidence share it, instead of one parsed copy per event
        self._type_names = {t: t for t in self._routes}
        # The schedule: every wake time in use, in a heap of plain floats (cheap to
        # compare), each with its opportunities in the order they were scheduled.
        self._heap: list[float] = []
        self._at: dict[float, list[_Expectation]] = {}
        # decided opportunities, to forget once the horizon has passed what could change them
        self._exp_expiry = _Expiry(width)
        self._expiry_check_at = NEG_INF
        # opening events that arrived after their decision time: decided at the next
        # ``advance_to`` (see ``_on_open``)
        self._deferred: list[_Expectation] = []
        self._attrs_cache: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
        # patient -> earliest (time, id, type) of an event that voids that patient's
        # opportunities
        self._patient_voids: dict[str, tuple[float, str, str]] = {}
        # voiding event id -> why it voids, for the few that say (a death, a change made
        # because the patient died); the void records carry it as ``attrs.void_reason``
        self._void_reasons: dict[str, str] = {}
        # Seen event ids with their event time: every id is remembered for at least
        # dedupe_window of watermark progress, and (steady traffic moving the watermark
        # in small steps) at most a sixteenth of it longer. The
        # same id at the same time is a re-delivery; at another time, a conflict (two
        # events given one id: an HL7 sender reusing message control ids). Only the time
        # is kept (a float per id, no tuple: a year's replay holds a week of ids). The
        # ids arrive in batches, one per sixteenth of the window of watermark progress;
        # a batch is forgotten whole once the window has passed its end (two halves
        # swapped every window kept up to twice the window: a week more of ids). A
        # re-delivery after the window is harmless: an opening event is recognised by
        # its opportunity, and closing events only count once.
        self._seen: dict[str, float] = {}
        self._seen_batch: list[str] = []
        # (watermark when the batch was closed, its ids), oldest first
        self._seen_batches: deque[tuple[float, list[str]]] = deque()
        self._seen_rotate_at = NEG_INF
        self._fire_now = False
        self._next_housekeeping = NEG_INF

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> Engine:
        """An engine built from a ``Settings`` object (``detectors.rules``); keyword
        arguments override or add to what the settings give (``sink=``, ``detectors=``,
        ``allowed_lateness=``...)."""
        kwargs: dict[str, Any] = {
            "allowed_lateness": settings.allowed_lateness,
            "late_retention": settings.late_retention,
            "dedupe_window": settings.dedupe_window,
            "correction_horizon": settings.correction_horizon,
            "site_labels": settings.site_labels,
            "timezone": settings.timezone,
        }
        detectors = overrides.pop("detectors", None)
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(settings.detectors if detectors is None else detectors, **kwargs)

    # ------------------------------------------------------------------ input

    def process(self, ev: Event) -> None:
        """Take one event (any arrival order). Outcomes go to the sink as they are decided."""
        eid = ev.id
        t = ev.time
        etype = ev.type
        seen = self._seen
        prev = seen.get(eid)
        if prev is not None:  # rare: a re-delivery or a conflict
            if prev == t:
                self.stats.duplicates += 1
            else:
                self._conflict(ev, prev)
            return
        if t < self.watermark:
            if t < self.watermark - self.horizon:
                self._refuse(
                    ev,
                    BEYOND_HORIZON,
                    f"event time {format_time(t)} is more than the correction horizon "
                    f"behind the watermark {format_time(self.watermark)}: it can no "
                    "longer be used without giving a different answer than its "
                    "in-order delivery would have",
                )
                return
            self.stats.late_events += 1
        seen[eid] = t
        self._seen_batch.append(eid)
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
                elif role == _PATIENT_VOID:
                    self._on_patient_void(det, st, ev)  # type: ignore[arg-type]
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
        if self._fire_now:
            self._advance(self.watermark)

    def _conflict(self, ev: Event, prev: float) -> None:
        self._refuse(
            ev,
            ID_CONFLICT,
            f"event id {ev.id!r} was already used by an event at {format_time(prev)}, "
            f"this one is at {format_time(ev.time)}: a re-delivery repeats an event, this "
            "one is not the same; give each event its own id (for HL7 v2, "
            "event_id_includes_sender)",
        )

    def _refuse(self, ev: Event, kind: str, reason: str) -> None:
        refused = self.stats.refused
        refused[kind] = refused.get(kind, 0) + 1
        if self.on_reject is not None:
            self.on_reject(ev, kind, reason)

    def process_many(self, events: Iterable[Event]) -> None:
        """Process events in the order given."""
        process = self.process
        for ev in events:
            process(ev)

    def advance_to(self, time: float) -> None:
        """Move the watermark to ``time`` (epoch seconds, UTC) if that is later, deciding
        everything due by then, including opportunities whose opening event arrived
        after their decision time. Used for ``--as-of``, live ticks and the end of an
        input."""
        deferred = self._deferred
        if deferred:
            self._deferred = []
            for exp in deferred:
                if exp.wake == NEG_INF:
                    exp.wake = INF
                    self._schedule(exp)
        self._advance(time if time > self.watermark else self.watermark)
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
        opened_at = ev.time
        eid = ev.id
        found = st.open.get(key)
        if found is not None:
            if isinstance(found, _Expectation):
                if st.once:
                    # one opportunity per key: a later opening event corrects it
                    self._correct(st, found, ev, due)
                    return
                if found.opening_id == eid:
                    return  # a re-delivery after the dedupe window: already counted
            else:
                for other in found:
                    if other.opening_id == eid:
                        return  # a re-delivery after the dedupe window: already counted
        refs = ev.refs
        kept = None if len(refs) == 1 and key_ref is not None and key_ref in refs else refs
        # (None: just the key, rebuilt when a record needs it; see _Expectation)
        etype = self._type_names[ev.type]
        exp = _Expectation(
            det, key, eid, etype, opened_at, due, ev.patient, kept, self._shared(det, ev)
        )
        self._match_tokens(st, exp, found)
        reason = None if st.no_void_reason else det.void_reason(ev)
        if reason is not None:
            # void from the start: this opportunity, and the key's earlier ones, as a
            # voiding event at this time would (this one is set first, so that
            # ``_closing`` leaves it alone and schedules only the others)
            self._void_reasons[eid] = reason
            if opened_at < exp.voided or (opened_at == exp.voided and eid < exp.voider):  # type: ignore[operator]
                exp.voided, exp.voider, exp.voider_type = opened_at, eid, etype
            self._closing(st, key, opened_at, eid, etype, _VOID)
        if found is None:
            st.open[key] = exp
        elif isinstance(found, _Expectation):
            st.open[key] = [found, exp]
        else:
            found.append(exp)
        if st.by_patient is not None and exp.patient is not None:
            self._index_patient(st, exp)
        stats = self.stats
        name = st.name
        stats.opened[name] += 1
        stats.open_now[name] += 1
        wake = self._next_wake(exp)
        if wake <= self.watermark:
            # Its decision time has passed already (the opening event came late, as in a
            # backlog or an archive): decide it at the next advance_to, once the events
            # queued behind it have been read, not now.
            exp.wake = NEG_INF
            self._deferred.append(exp)
            return
        # first scheduling (``_schedule`` for a new opportunity, inline: every open pays it)
        exp.wake = wake
        lst = self._at.get(wake)
        if lst is None:
            self._at[wake] = [exp]
            heappush(self._heap, wake)
        else:
            lst.append(exp)

    def _shared(self, det: ExpectationDetector, ev: Event) -> dict[str, Any]:
        """``det.carried_attrs(ev)``, one dict shared by every opportunity that carries
        the same attrs: decided opportunities are kept for the correction horizon, and
        a few hundred site/clinic/test combinations would otherwise be copied into
        hundreds of thousands of dicts. Records share it too: never change an
        outcome's ``attrs`` in place."""
        attrs = det.carried_attrs(ev)
        cache = self._attrs_cache
        key = tuple(attrs.items())
        found = cache.get(key)
        if found is not None:
            return found
        if len(cache) < _ATTRS_CACHE_MAX:
            cache[key] = attrs
        return attrs

    def _index_patient(self, st: _DetState, exp: _Expectation) -> None:
        """File a new opportunity under its patient, voided at once by a patient-level
        void already seen (it is not scheduled yet: the caller schedules it)."""
        assert st.by_patient is not None and exp.patient is not None
        st.by_patient.setdefault(exp.patient, []).append(exp)
        death = self._patient_voids.get(exp.patient)
        if death is not None:
            self._patient_void_fields(exp, *death)

    def _match_tokens(
        self,
        st: _DetState,
        exp: _Expectation,
        others: _Expectation | list[_Expectation] | None,
    ) -> None:
        """Take the earliest closing and voiding events already seen for ``exp``'s key:
        the key's tokens, and the earliest closes of its other opportunities ``others``
        (a close that became an opportunity's earliest is kept there, not as a token)."""
        opened_at = exp.opened
        if others is not None:
            for other in _listed(others):
                tt = other.closed
                tid = other.closer
                if (
                    other is not exp
                    and tid is not None
                    and opened_at <= tt
                    and (tt < exp.closed or (tt == exp.closed and tid < exp.closer))  # type: ignore[operator]
                ):
                    exp.closed, exp.closer, exp.closer_type = tt, tid, other.closer_type
        toks = st.close_tokens.get(exp.key)
        if toks:
            for tt, tid, ttype in _tokens(toks):
                if opened_at <= tt and (tt < exp.closed or (tt == exp.closed and tid < exp.closer)):  # type: ignore[operator]
                    exp.closed, exp.closer, exp.closer_type = tt, tid, ttype
        toks = st.void_tokens.get(exp.key)
        if toks:
            for tt, tid, ttype in _tokens(toks):
                if opened_at <= tt and (tt < exp.voided or (tt == exp.voided and tid < exp.voider)):  # type: ignore[operator]
                    exp.voided, exp.voider, exp.voider_type = tt, tid, ttype

    def _correct(self, st: _DetState, exp: _Expectation, ev: Event, due: float) -> None:
        """A further opening event for a key that opens once (an encounter is discharged
        once): the one with the earliest event time is the opportunity (ties: the smaller
        id). A later one changes nothing; an earlier one, arriving late, moves the
        opportunity and its deadline earlier, and its outcome is worked out again (a
        decided outcome only ever stays decided)."""
        opened_at, eid = ev.time, ev.id
        if opened_at > exp.last_open:
            exp.last_open = opened_at  # remembered until the horizon passes it (_last_change)
        if opened_at > exp.opened or (opened_at == exp.opened and eid >= exp.opening_id):
            return
        det = st.det
        self._keep_close(st, exp)  # its close may not count for it any more
        exp.opened, exp.opening_id, exp.due = opened_at, eid, due
        exp.opening_type = self._type_names[ev.type]
        exp.patient, exp.refs, exp.attrs = ev.patient, ev.refs, self._shared(det, ev)
        exp.closed, exp.closer, exp.voided, exp.voider = INF, None, INF, None
        exp.closer_type = exp.voider_type = ""
        exp.emitted_close = math.nan  # its times moved: a decided record is emitted again
        self._match_tokens(st, exp, st.open.get(exp.key))
        patient = exp.patient
        death = None
        if st.by_patient is not None and patient is not None:
            death = self._patient_voids.get(patient)
        if death is not None:
            self._patient_void_fields(exp, *death)
        self._reschedule_now(exp, opened_at)

    def _on_close(self, det: ExpectationDetector, st: _DetState, ev: Event, role: int) -> None:
        if role == _CLOSE:
            if not st.all_close and not det.is_close(ev):
                return
        elif not st.all_void and not det.is_void(ev):
            return
        key_ref = st.key_ref
        key = ev.refs.get(key_ref) if key_ref is not None else det.key_of(ev)
        if key is not None:
            self._closing(st, key, ev.time, ev.id, self._type_names[ev.type], role)

    def _closing(self, st: _DetState, key: str, t: float, eid: str, etype: str, role: int) -> None:
        """A closing or voiding event of ``key`` at ``t``: it counts for every opportunity
        of the key opened at or before it, and is kept for those still to arrive."""
        taken = False
        found = st.open.get(key)
        if found is not None:
            if isinstance(found, _Expectation):
                if found.opened <= t:
                    taken = self._counts_for(st, found, t, eid, etype, role)
            else:
                for exp in found:
                    if exp.opened <= t and self._counts_for(st, exp, t, eid, etype, role):
                        taken = True
        if not taken or role != _CLOSE:
            st.add_token(role, key, t, eid, etype)

    def _counts_for(
        self, st: _DetState, exp: _Expectation, t: float, eid: str, etype: str, role: int
    ) -> bool:
        """A closing (``_CLOSE``) or voiding event at ``t`` for ``exp``, opened at or before
        it: the earliest wins; equal times go to the smaller id, so the evidence does not
        depend on arrival order either. True when it is now ``exp``'s earliest."""
        if role == _CLOSE:
            if t < exp.closed or (t == exp.closed and eid < exp.closer):  # type: ignore[operator]
                self._keep_close(st, exp)  # the close it displaces may count for another
                exp.closed, exp.closer, exp.closer_type = t, eid, etype
                self._reschedule_now(exp, t)
                return True
        elif t < exp.voided or (t == exp.voided and eid < exp.voider):  # type: ignore[operator]
            exp.voided, exp.voider, exp.voider_type = t, eid, etype
            self._reschedule_now(exp, t)
            return True
        return False

    @staticmethod
    def _keep_close(st: _DetState, exp: _Expectation) -> None:
        """``exp`` is about to give up its earliest closing event (an earlier one came, it
        is corrected, or it is forgotten): keep that event among the key's tokens, where
        an opportunity still to arrive finds it (``_closing`` keeps no token of a close
        that became an opportunity's earliest; see ``_match_tokens``)."""
        closer = exp.closer
        if closer is None:
            return
        t = exp.closed
        found = st.close_tokens.get(exp.key)
        if found is not None:
            for tok in _tokens(found):
                if tok[0] == t and tok[1] == closer:
                    return  # kept already (it came before its opportunity)
        st.add_token(_CLOSE, exp.key, t, closer, exp.closer_type)

    def _on_patient_void(self, det: ExpectationDetector, st: _DetState, ev: Event) -> None:
        """An event that voids every opportunity of its patient whose deadline it
        precedes, also one opened after it (no notice is owed to a patient who died)."""
        patient = ev.patient
        if patient is None:
            return
        known = self._patient_voids.get(patient)
        if known is not None and (known[0], known[1]) <= (ev.time, ev.id):
            return
        self._void_reasons[ev.id] = det.patient_void_reason(ev)
        etype = self._type_names[ev.type]
        self._patient_voids[patient] = (ev.time, ev.id, etype)
        assert st.by_patient is not None
        for exp in st.by_patient.get(patient, ()):
            if self._patient_void_fields(exp, ev.time, ev.id, etype):
                self._reschedule_now(exp, exp.voided)

    @staticmethod
    def _patient_void_fields(exp: _Expectation, t: float, eid: str, etype: str) -> bool:
        """Void ``exp`` from ``t`` (from its opening, when ``t`` is before it); True when
        that is now its earliest void."""
        at = t if t > exp.opened else exp.opened
        if at < exp.voided or (at == exp.voided and eid < exp.voider):  # type: ignore[operator]
            exp.voided, exp.voider, exp.voider_type = at, eid, etype
            return True
        return False

    def _next_wake(self, exp: _Expectation) -> float:
        """The next watermark time at which ``exp``'s outcome can change, given what is
        known of it (``INF``: none)."""
        due = exp.due
        closed = exp.closed
        voided = (
            exp.voided if exp.voided <= due else INF
        )  # a void after the deadline changes nothing
        state = exp.state
        if state == _UNDECIDED:
            # void, met, or (strictly after the deadline: an event at the watermark is
            # still in time) missed or late, whichever comes first
            wake = math.nextafter(due, INF)
            if closed < wake:
                wake = closed
            return voided if voided < wake else wake
        if state == "missed" and closed <= due + self.late_retention:
            return closed
        return INF

    def _reschedule_now(self, exp: _Expectation, t: float) -> None:
        """What ``exp`` knows changed at event time ``t``: have it looked at again by the
        time the watermark passes ``t`` (at once when it already has)."""
        if exp.wake == NEG_INF:
            return  # deferred: decided at the next advance_to with all it knows then
        if exp.state == _UNDECIDED:
            self._schedule(exp)
        else:
            self._schedule(exp, t)

    def _schedule(self, exp: _Expectation, at: float = INF) -> None:
        """(Re)schedule ``exp`` at the next watermark time its outcome can change (or
        ``at``, if earlier). A later time than the scheduled one changes nothing."""
        wake = self._next_wake(exp)
        if at < wake:
            wake = at
        old = exp.wake
        if wake < old:
            at_ = self._at
            if old != INF:  # off its old time (``_unschedule``, inline: closes pay it)
                was = at_[old]
                if len(was) == 1:
                    del at_[old]
                else:
                    was.remove(exp)
            exp.wake = wake
            lst = at_.get(wake)
            if lst is None:
                at_[wake] = [exp]
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
        """Forget what the correction horizon has passed, rotate the seen event ids, and
        let the violation detectors catch up. Done in steps of ``HOUSEKEEPING_STEP``
        seconds of watermark, not per event: it only decides *when* those things happen,
        never *what*."""
        self._next_housekeeping = wm + HOUSEKEEPING_STEP
        if len(self._heap) > 2 * len(self._at) + 4096:
            # times nothing is scheduled at any more (opportunities decided before their
            # deadline): rebuild the heap from the times in use
            self._heap = list(self._at)
            heapq.heapify(self._heap)
        line = wm - self.horizon
        if line >= self._expiry_check_at:
            # what the horizon passed is forgotten bucket by bucket: look only when it
            # can have passed one more (a quarter of a bucket's width on)
            self._expiry_check_at = line + self._exp_expiry.width / 4
            self._forget(line)
        if wm >= self._seen_rotate_at:
            self._seen_rotate_at = wm + self.dedupe_window / 16
            if self._seen_batch:
                self._seen_batches.append((wm, self._seen_batch))
                self._seen_batch = []
            batches, seen = self._seen_batches, self._seen
            while batches and batches[0][0] + self.dedupe_window <= wm:
                for eid in batches.popleft()[1]:
                    seen.pop(eid, None)  # (an id restored twice from an old snapshot)
        for det in self._vio:
            det.on_watermark(self)

    def _forget(self, line: float) -> None:
        """Forget the tokens and decided opportunities that nothing at or after event time
        ``line`` (the watermark less the horizon) can change any more."""
        for st in self._states.values():
            for toks, expiry in (
                (st.close_tokens, st.close_expiry),
                (st.void_tokens, st.void_expiry),
            ):
                for key in expiry.due(line):
                    found = toks.get(key)
                    if found is not None:
                        kept = [tok for tok in _tokens(found) if tok[0] >= line]
                        if not kept:
                            del toks[key]
                        else:
                            toks[key] = kept[0] if len(kept) == 1 else kept
        for exp in self._exp_expiry.due(line):
            if exp.state == _UNDECIDED or exp.wake == NEG_INF:
                continue  # corrected back to undecided: it is filed again when decided
            last = self._last_change(exp)
            if last < line:
                self._drop(exp, line)
            elif last != INF:
                self._exp_expiry.add(last, exp)

    def _last_change(self, exp: _Expectation) -> float:
        """The latest event time at which an event could still change ``exp``'s outcome:
        its earliest counting close or in-time void, or the end of its late retention;
        and not before its latest opening event (``last_open``)."""
        due = exp.due
        last = due + self.late_retention
        if exp.closed < last:
            last = exp.closed
        if exp.voided <= due and exp.voided < last:
            last = exp.voided
        return last if last > exp.last_open else exp.last_open

    def _state_at(self, exp: _Expectation, wm: float) -> str:
        """The outcome of ``exp`` given what is known, as of watermark ``wm``."""
        due = exp.due
        closed = exp.closed
        voided = exp.voided if exp.voided <= due else INF
        if voided < closed:  # a tie goes to the closing event
            return "void" if voided <= wm else _UNDECIDED
        if closed <= due:
            return "met" if closed <= wm else _UNDECIDED
        if wm <= due:
            return _UNDECIDED
        if closed <= wm and closed <= due + self.late_retention:
            return "late"
        return "missed"

    def _resolve(self, exp: _Expectation, wm: float) -> None:
        if exp.state == _UNDECIDED:
            # most opportunities end here: met at their first decision, and with nothing
            # more to wait for, not scheduled again
            closed = exp.closed
            if (
                closed <= exp.due and closed <= wm and closed <= exp.voided
            ):  # a tie goes to the close
                self.stats.open_now[exp.det.name] -= 1
                exp.state = "met"
                exp.emitted_close = closed
                self._exp_expiry.add(closed, exp)  # its _last_change
                self._emit(self._record(exp, "met", wm, closed, exp.closer))
                return
        state = self._state_at(exp, wm)
        if state != _UNDECIDED:
            if state in ("met", "late"):
                closed_at, closer = exp.closed, exp.closer
            elif state == "void":
                closed_at, closer = exp.voided, exp.voider
            else:
                closed_at, closer = NEG_INF, None
            previous = exp.state
            if state != previous or closed_at != exp.emitted_close:
                if previous == _UNDECIDED:
                    self.stats.open_now[exp.det.name] -= 1
                    self._exp_expiry.add(self._last_change(exp), exp)
                    if state == "late":
                        # a late one is always missed first (the watermark passed the
                        # deadline before it passed the close), however far it jumped
                        exp.state = previous = "missed"
                        self._emit(self._record(exp, "missed", wm, None, None))
                if previous != _UNDECIDED:
                    self.stats.amendments += 1
                exp.state = state
                exp.emitted_close = closed_at
                self._emit(
                    self._record(
                        exp,
                        state,
                        wm,
                        None if closer is None else closed_at,
                        closer,
                        previous or None,
                    )
                )
        self._schedule(exp)

    def _drop(self, exp: _Expectation, line: float) -> None:
        """Forget ``exp``: nothing at or after event time ``line`` can change it."""
        if exp.wake != INF:
            self._unschedule(exp)
        st = self._states[exp.det.name]
        if exp.closed >= line:  # (a close past its late retention) still a token
            self._keep_close(st, exp)
        found = st.open.get(exp.key)
        if found is exp:
            del st.open[exp.key]
        elif isinstance(found, list) and exp in found:
            found.remove(exp)
            if len(found) == 1:
                st.open[exp.key] = found[0]
        if st.by_patient is not None and exp.patient is not None:
            mine = st.by_patient.get(exp.patient)
            if mine is not None and exp in mine:
                mine.remove(exp)
                if not mine:
                    del st.by_patient[exp.patient]

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
        attrs = exp.attrs
        if outcome == "void" and exp.voider in self._void_reasons:
            attrs = {**attrs, "void_reason": self._void_reasons[exp.voider]}
        opening = (exp.opening_type, exp.opened)
        if closer:
            evidence = [exp.opening_id, closer]
            if outcome == "void":
                # a death before the opening voids it from the opening: the death's own
                # time is what the evidence shows
                death = self._patient_voids.get(exp.patient) if exp.patient else None
                at = death[0] if death is not None and death[1] == closer else exp.voided
                events = [opening, (exp.voider_type, at)]
            else:
                events = [opening, (exp.closer_type, exp.closed)]
        else:
            evidence = [exp.opening_id]
            events = [opening]
        o = Outcome(  # positional: this runs for every decided opportunity
            failure_id(det.name, exp.key, exp.key if det.opens_once_per_key else exp.opening_id),
            det.name,
            outcome,
            exp.key,
            exp.patient,
            exp.all_refs(),
            exp.opened,
            exp.due,
            closed_at,
            wm,
            evidence,
            attrs,
            "",
            amended_from,
            events,
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
            for found in by_key.values():
                for exp in _listed(found):
                    if exp.state == _UNDECIDED:
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
            for found in by_key.values():
                for e in _listed(found):
                    exps.append(
                        [
                            e.det.name,
                            e.key,
                            e.opening_id,
                            e.opened,
                            e.due,
                            e.patient,
                            e.all_refs(),
                            e.attrs,
                            f(e.closed),
                            e.closer,
                            f(e.voided),
                            e.voider,
                            e.state,
                            "nan" if math.isnan(e.emitted_close) else f(e.emitted_close),
                            e.wake == NEG_INF,
                            e.opening_type,
                            e.closer_type,
                            e.voider_type,
                            e.last_open,
                        ]
                    )
        tokens = [
            [name, role, key, tt, tid, ttype]
            for name, st in self._states.items()
            for role, toks in ((_CLOSE, st.close_tokens), (_VOID, st.void_tokens))
            for key, found in toks.items()
            for tt, tid, ttype in _tokens(found)
        ]
        return {
            "version": 4,
            "watermark": f(self.watermark),
            "max_time": f(self.max_time),
            "expectations": exps,
            "tokens": tokens,
            "patient_voids": {p: list(v) for p, v in self._patient_voids.items()},
            "void_reasons": dict(self._void_reasons),
            # each batch with the watermark it was closed at (the open one: None)
            "seen": [
                [[eid, self._seen[eid]] for eid in ids]
                for _, ids in [*self._seen_batches, (None, self._seen_batch)]
            ],
            "seen_closed_at": [end for end, _ in self._seen_batches],
            "seen_rotate_at": f(self._seen_rotate_at),
            "stats": {
                "events_by_type": dict(self.stats.events_by_type),
                "duplicates": self.stats.duplicates,
                "late_events": self.stats.late_events,
                "opened": dict(self.stats.opened),
                "open_now": dict(self.stats.open_now),
                "outcomes": [[*k, v] for k, v in self.stats.outcomes.items()],
                "refused": dict(self.stats.refused),
                "amendments": self.stats.amendments,
            },
            "detectors": {d.name: d.snapshot() for d in self._vio},
        }

    def _restore_seen(self, state: Mapping[str, Any]) -> None:
        """The seen ids of a snapshot: batches (version 4), or the two generations of
        version 3, whose ids are then all remembered from now on as one batch."""
        self._seen = {}
        self._seen_batches = deque()
        self._seen_batch = []
        if "seen_closed_at" in state:
            *closed, current = state["seen"]
            for end, ids in zip(state["seen_closed_at"], closed, strict=True):
                self._seen_batches.append((float(end), self._seen_ids(ids)))
            self._seen_batch = self._seen_ids(current)
            return
        for name in ("seen_old", "seen"):
            # older rows were [id, type, time, ...] (4 items) or [id, time]
            rows = [[e[0], e[-2 if len(e) == 4 else 1]] for e in state[name]]
            self._seen_batch += self._seen_ids(rows)

    def _seen_ids(self, rows: Sequence[Sequence[Any]]) -> list[str]:
        for eid, t in rows:
            self._seen[eid] = float(t)
        return [eid for eid, _ in rows]

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace this engine's state with ``state`` from ``snapshot()``. The engine must
        have been built with the same detectors (by name)."""
        # version 3 is version 4 without the evidence's event types (records restored
        # from it name their evidence events by id and time only)
        if state.get("version") not in (3, 4):
            raise ConfigError(
                "unknown engine snapshot version (this Carewatch reads versions 3 and 4); "
                "was it written by another version of Carewatch? Replay the input instead."
            )

        def g(x: float | None, default: float) -> float:
            return default if x is None else float(x)

        self.watermark = g(state["watermark"], NEG_INF)
        self.max_time = g(state["max_time"], NEG_INF)
        for by_key in self._open.values():
            by_key.clear()  # cleared in place: the routing table holds these dicts
        self._heap = []
        self._at = {}
        self._deferred = []
        self._exp_expiry.clear()
        self._expiry_check_at = NEG_INF
        self._patient_voids = {
            p: (float(v[0]), v[1], v[2] if len(v) > 2 else "")
            for p, v in state["patient_voids"].items()
        }
        self._void_reasons = dict(state["void_reasons"])
        for st in self._states.values():
            st.close_tokens.clear()
            st.void_tokens.clear()
            st.close_expiry.clear()
            st.void_expiry.clear()
            if st.by_patient is not None:
                st.by_patient.clear()
        for row in state["expectations"]:
            name, key, eid, opened_at, due, patient, refs, attrs = row[:8]
            closed, closer, voided, voider, outcome, emitted, deferred = row[8:15]
            types = row[15:18] if len(row) >= 18 else ("", "", "")
            found = self._states.get(name)
            if found is None:
                continue  # a detector switched off since the snapshot
            e = _Expectation(found.det, key, eid, types[0], opened_at, due, patient, refs, attrs)
            e.closed, e.closer, e.closer_type = g(closed, INF), closer, types[1]
            e.voided, e.voider, e.voider_type = g(voided, INF), voider, types[2]
            # "nan": a correction moved its times; the next decision is emitted anyway
            e.state = outcome
            e.emitted_close = math.nan if emitted == "nan" else g(emitted, NEG_INF)
            if len(row) >= 19:
                e.last_open = float(row[18])
            known = found.open.get(key)
            if known is None:
                found.open[key] = e
            elif isinstance(known, _Expectation):
                found.open[key] = [known, e]
            else:
                known.append(e)
            if found.by_patient is not None and patient is not None:
                found.by_patient.setdefault(patient, []).append(e)
            if e.state != _UNDECIDED:
                self._exp_expiry.add(self._last_change(e), e)
            if deferred:
                e.wake = NEG_INF
                self._deferred.append(e)
            else:
                self._schedule(e)
        for name, role, key, tt, tid, *ttype in state["tokens"]:
            found = self._states.get(name)
            if found is not None:
                found.add_token(role, key, tt, tid, ttype[0] if ttype else "")
        self._restore_seen(state)
        self._seen_rotate_at = g(state["seen_rotate_at"], NEG_INF)
        saved = state["stats"]
        self.stats = EngineStats(
            events_by_type=dict(saved["events_by_type"]),
            duplicates=saved["duplicates"],
            late_events=saved["late_events"],
            opened={**self.stats.opened, **saved["opened"]},
            open_now={**self.stats.open_now, **saved["open_now"]},
            outcomes={(a, b, c): v for a, b, c, v in saved["outcomes"]},
            refused=dict(saved.get("refused", {})),
            amendments=saved.get("amendments", 0),
        )
        self._counts = self.stats.events_by_type
        for d in self._vio:
            if d.name in state["detectors"]:
                d.restore(state["detectors"][d.name])
