"""The detector contract: the one module to read before writing a detector.

Two shapes cover the care processes Carewatch watches:

- ``ExpectationDetector``: "B must follow A for the same key within T" (with events that
  void the expectation). Subclasses only *describe* the rule: which events open, close
  and void, how the key and the deadline are found. The engine owns the state, the
  watermark, lateness and amendments, so every expectation rule behaves the same way.
- ``ViolationDetector``: "this must not happen given that". Subclasses keep their own
  (serialisable) state and emit ``violation`` / ``met`` outcomes through the ``Context``.

Detectors know nothing of Kafka, faust or files, and never read the wall clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from string import Formatter
from typing import Any, ClassVar, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detectors.durations import format_duration
from detectors.events import Event
from detectors.records import Outcome, failure_id

__all__ = [
    "CARRIED_ATTRS",
    "DEFAULT_CLOCK",
    "DEFAULT_TIMEZONE",
    "Context",
    "Detector",
    "ExpectationDetector",
    "LocalClock",
    "Thresholds",
    "ViolationDetector",
    "human_time",
    "sentence_context",
    "summary_sentence",
]

#: Attributes of an opening event copied into its outcome's ``attrs`` (for QI slicing).
CARRIED_ATTRS: tuple[str, ...] = ("site", "specialty", "clinic", "test", "priority")


#: The site's timezone when the rules file names none (``timezone:``).
DEFAULT_TIMEZONE = "Europe/London"


class LocalClock:
    """Times as people at a site read them, for sentences: ``Mon 02 Mar 2026 10:15 GMT``
    (local time and the zone's abbreviation, so summer time shows as BST). Every failure
    names two times: offsets are worked out once per quarter hour, day words once a day.
    """

    __slots__ = ("_days", "_offsets", "name", "zone")

    def __init__(self, name: str = DEFAULT_TIMEZONE) -> None:
        try:
            self.zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {name!r}; write an IANA name such as Europe/London"
            ) from None
        self.name = name
        self._offsets: dict[int, tuple[int, str]] = {}  # quarter hour -> (minutes, abbr)
        self._days: dict[int, str] = {}  # local day since the epoch -> "Mon 02 Mar 2026"

    def __deepcopy__(self, memo: dict[int, Any]) -> LocalClock:
        return self  # its caches are shared: an engine copies its detectors

    def words(self, seconds: float) -> str:
        """``seconds`` (epoch, UTC) in local time, with the zone's abbreviation."""
        quarter = int(seconds // 900)
        found = self._offsets.get(quarter)
        if found is None:
            local = datetime.fromtimestamp(quarter * 900, self.zone)
            offset = local.utcoffset()
            minutes = int(offset.total_seconds() // 60) if offset is not None else 0
            found = self._offsets[quarter] = (minutes, local.tzname() or self.name)
        day, minute = divmod(int(seconds // 60) + found[0], 1440)
        words = self._days.get(day)
        if words is None:
            words = self._days[day] = datetime.fromtimestamp(day * 86400, UTC).strftime(
                "%a %d %b %Y"
            )
        return f"{words} {minute // 60:02d}:{minute % 60:02d} {found[1]}"


#: the clock of detectors no engine has told a timezone (and of ``human_time``)
DEFAULT_CLOCK = LocalClock()


def human_time(seconds: float, clock: LocalClock | None = None) -> str:
    """A short local time for summaries, e.g. ``Mon 02 Mar 2026 10:15 GMT``: in
    ``clock``'s timezone (default Europe/London)."""
    return (clock or DEFAULT_CLOCK).words(seconds)


class _Names:
    """What summary templates may name: the refs, the key, then the attrs; anything
    missing reads as ``?`` instead of failing."""

    __slots__ = ("o",)

    def __init__(self, o: Outcome) -> None:
        self.o = o

    def __getitem__(self, name: str) -> str:
        o = self.o
        if name in o.refs:
            return o.refs[name]
        if name == "key":
            return o.key
        return str(o.attrs.get(name, "?"))


class Context(Protocol):
    """What the engine offers a violation detector."""

    @property
    def watermark(self) -> float:
        """Event time (epoch seconds, UTC) up to which input is taken as complete."""
        ...

    def emit(self, outcome: Outcome) -> None:
        """Hand an outcome record to the engine's output."""
        ...


class Thresholds:
    """Named durations (seconds) with per-attribute overrides.

    ``defaults`` maps a setting name to seconds. Each override is ``(when, values)``:
    when every ``attrs[k] == v`` of ``when`` holds for the opening event, ``values``
    replace the defaults. Later overrides win over earlier ones.
    """

    __slots__ = ("defaults", "overrides")

    def __init__(
        self,
        defaults: Mapping[str, float],
        overrides: Iterable[tuple[Mapping[str, Any], Mapping[str, float]]] = (),
    ) -> None:
        self.defaults = dict(defaults)
        self.overrides = [(dict(w), dict(v)) for w, v in overrides]

    def for_event(self, event: Event) -> Mapping[str, float]:
        """The thresholds that apply to ``event`` (seconds)."""
        if not self.overrides:
            return self.defaults
        values = dict(self.defaults)
        attrs = event.attrs
        for when, vals in self.overrides:
            if all(attrs.get(k) == v for k, v in when.items()):
                values.update(vals)
        return values


class Detector(ABC):
    """Common base. ``name`` is the detector's stable id (used in records and metrics)."""

    name: ClassVar[str] = ""
    #: Which id the Kafka runtime must partition this detector's input by: every built-in
    #: except ``clinic-overbooked`` only relates events of one patient.
    partition_by: ClassVar[str] = "patient"
    #: What a QI measure of this detector is: ``"proportion"`` when every opportunity
    #: ends met or failed (a failure rate), ``"count"`` for violations that have no
    #: denominator.
    measure: ClassVar[str] = "proportion"
    #: The site's clock for the times in sentences; the engine sets it from the rules
    #: file's ``timezone``.
    clock: LocalClock = DEFAULT_CLOCK

    @property
    @abstractmethod
    def reads(self) -> Collection[str]:
        """Event types this detector needs to see (any collection: a frozenset, a set,
        a tuple)."""


class ExpectationDetector(Detector):
    """Describe an expectation rule; the engine runs it.

    Subclasses set ``key_ref`` and the three type tuples, and implement ``deadline``.
    The optional hooks below are documented no-ops or simple defaults.
    """

    #: Which ``refs`` entry relates A to B and Z (e.g. ``"order"``).
    key_ref: ClassVar[str] = ""
    #: Event types (any sequence: a tuple or a list).
    opens: ClassVar[Sequence[str]] = ()
    closes: ClassVar[Sequence[str]] = ()
    voids: ClassVar[Sequence[str]] = ()
    #: Event types that void every opportunity of the *same patient* whose deadline they
    #: precede, even one opened after them (``patient.died`` for a notice: no letter is
    #: owed to a patient who has died). Any sequence.
    patient_voids: ClassVar[Sequence[str]] = ()
    #: Whether a key opens one opportunity only (an encounter is discharged once: of
    #: several opening events for it, the earliest event time counts, and a repeat is a
    #: correction, not a second opportunity) or one per opening event (each change of an
    #: appointment owes its own notice).
    opens_once_per_key: ClassVar[bool] = False
    #: Words for summaries: what happened at A, and what was expected.
    opened_words: ClassVar[str] = "the opening event"
    expected_words: ClassVar[str] = "the expected follow-up"

    @property
    def reads(self) -> Collection[str]:
        return (
            frozenset(self.opens)
            | frozenset(self.closes)
            | frozenset(self.voids)
            | frozenset(self.patient_voids)
        )

    def key_of(self, event: Event) -> str | None:
        """The key relating this event to others; ``None`` means the event is not usable."""
        return event.refs.get(self.key_ref)

    @abstractmethod
    def deadline(self, event: Event) -> float | None:
        """For an event of an ``opens`` type: the due time (epoch seconds, UTC), or
        ``None`` when this event opens no opportunity (e.g. a patient-initiated change)."""

    def is_close(self, event: Event) -> bool:
        """Whether an event of a ``closes`` type really closes (e.g. the right document kind)."""
        return True

    def is_void(self, event: Event) -> bool:
        """Whether an event of a ``voids`` type really voids."""
        return True

    def void_reason(self, event: Event) -> str | None:
        """For an opening event: a reason why the opportunity it opens is void from the
        start (it is recorded as ``void`` with ``attrs.void_reason``), or ``None``."""
        return None

    def patient_void_reason(self, event: Event) -> str:
        """The ``attrs.void_reason`` of opportunities voided by ``event``, one of the
        ``patient_voids`` types."""
        return "the patient's death is recorded"

    def carried_attrs(self, event: Event) -> dict[str, Any]:
        """What of the opening event goes into the outcome's ``attrs``."""
        a = event.attrs
        out = {}
        for k in CARRIED_ATTRS:  # a plain loop: no comprehension frame, on every opening
            if k in a:
                out[k] = a[k]
        return out

    def summary(self, o: Outcome) -> str:
        """One plain sentence for an operations person (see ``summary_sentence``)."""
        outcome = o.outcome
        if outcome == "void" and "void_reason" in o.attrs:
            what = self.opened_words.format_map(_Names(o))
            expected = self.expected_words.format_map(_Names(o))
            return f"{what}; {expected} is no longer expected: {o.attrs['void_reason']}."
        if outcome in ("met", "void", "open"):
            # Most records: their sentence names no times, so the two templates and the
            # wording around them make one template, rendered in one go (straight from the
            # refs when it names nothing else, as the built-in sentences mostly do).
            template, fields = _template(outcome, self.opened_words, self.expected_words)
            refs = o.refs
            return template.format_map(refs if refs.keys() >= fields else _Names(o))
        names = _Names(o)
        what = self.opened_words.format_map(names) + sentence_context(o.attrs)
        expected = self.expected_words.format_map(names)
        words = self.clock.words
        due = words(o.due_at) if o.due_at is not None else "the deadline"
        late_by = ""
        if o.outcome == "late" and o.closed_at is not None and o.due_at is not None:
            late_by = format_duration(o.closed_at - o.due_at)
        return summary_sentence(o.outcome, what, expected, words(o.opened_at), due, late_by)


def sentence_context(attrs: Mapping[str, Any]) -> str:
    """What a coordinator needs to find the case, for a failure's sentence: the test and
    its priority, the clinic (``" (FBC, urgent; clinic Cardiology OPD)"``), or ``""``."""
    parts = []
    test, priority, clinic = attrs.get("test"), attrs.get("priority"), attrs.get("clinic")
    if test:
        parts.append(f"{test}, {priority}" if priority else str(test))
    elif priority:
        parts.append(f"{priority} priority")
    if clinic:
        parts.append(f"clinic {clinic}")
    return f" ({'; '.join(parts)})" if parts else ""


_TEMPLATES: dict[tuple[str, str, str], tuple[str, frozenset[str]]] = {}


def _template(outcome: str, opened_words: str, expected_words: str) -> tuple[str, frozenset[str]]:
    """The summary template of a ``met``, ``void`` or ``open`` record, made once by
    ``summary_sentence`` from the templates themselves (so the wording stays in one place),
    with the names it uses.
    """
    k = (outcome, opened_words, expected_words)
    found = _TEMPLATES.get(k)
    if found is None:
        template = summary_sentence(outcome, opened_words, expected_words, "", "", "")
        fields = frozenset(f for _, f, _, _ in Formatter().parse(template) if f is not None)
        found = _TEMPLATES[k] = (template, fields)
    return found


def summary_sentence(
    outcome: str, what: str, expected: str, opened: str, due: str, late_by: str
) -> str:
    """The summary wording of expectation outcomes, in one place (the streaming engine and
    the batch oracle both use it). It depends only on the final state of the opportunity,
    never on when it was noticed, so replays in any order give the same text.

    ``opened`` and ``due`` are ``LocalClock.words`` texts; ``late_by`` a
    ``format_duration``; a failure's ``what`` ends with its ``sentence_context``.
    """
    if outcome == "met":  # most records, rarely read: short and cheap
        return f"{what}; {expected} came in time."
    if outcome == "void":
        return f"{what}; {expected} is no longer expected (voided)."
    if outcome == "open":
        return f"{what}; {expected} is not due yet."
    if outcome == "late":
        return f"{what} at {opened}; {expected} came {late_by} after {due}."
    return f"{what} at {opened}; {expected} was due by {due} and has not happened."


class ViolationDetector(Detector):
    """A detector that keeps its own state and emits outcomes itself.

    Required: ``reads``, ``on_event``, ``snapshot``, ``restore``. Optional hooks are no-ops.
    State must be plain data (dicts, lists, strings, numbers) so a runtime can checkpoint it.
    A violation has no denominator (``measure`` is ``"count"``) unless the detector emits
    an outcome for every opportunity it watches, met ones too (then ``"proportion"``).
    """

    measure: ClassVar[str] = "count"

    @abstractmethod
    def on_event(self, event: Event, ctx: Context) -> None:
        """Handle one (de-duplicated) event of a type in ``reads``."""

    def on_watermark(self, ctx: Context) -> None:
        """Called when the watermark advanced. Default: nothing to do."""

    def configure(self, *, correction_horizon: float) -> None:
        """Told the engine's settings when an engine adopts this detector:
        ``correction_horizon`` (seconds) is how long what could still change a decision
        must be kept. Default: nothing to do."""

    def open_count(self) -> int:
        """How many opportunities are undecided (for the open-expectations metric)."""
        return 0

    def open_records(self, watermark: float) -> list[Outcome]:
        """Undecided opportunities as records with outcome ``open`` (end-of-input report)."""
        return []

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The detector's whole state as plain data."""

    @abstractmethod
    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the state with one produced by ``snapshot``."""

    def make_outcome(
        self,
        *,
        outcome: str,
        key: str,
        opening_id: str,
        event: Event,
        opened_at: float,
        due_at: float | None,
        detected_at: float,
        evidence: list[str],
        attrs: dict[str, Any],
        summary: str,
        evidence_events: list[tuple[str, float]] | None = None,
    ) -> Outcome:
        """Build an outcome record with the stable ``failure_id``. ``evidence_events``:
        the ``(type, time)`` of each evidence event, in the order of ``evidence``."""
        return Outcome(
            failure_id=failure_id(self.name, key, opening_id),
            detector=self.name,
            outcome=outcome,
            key=key,
            patient=event.patient,
            refs=dict(event.refs),
            opened_at=opened_at,
            due_at=due_at,
            closed_at=None,
            detected_at=detected_at,
            evidence=evidence,
            attrs=attrs,
            summary=summary,
            evidence_events=evidence_events,
        )
