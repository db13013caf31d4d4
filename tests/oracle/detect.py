"""The oracle's two steps, loading and detecting, and the one call that does both."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from detectors.builtin import (
    ClinicLetterOverdue,
    ClinicOverbooked,
    ContactAfterDeath,
    DischargeSummaryOverdue,
    RescheduleNotice,
    ResultOverdue,
    ResultUnacknowledged,
)
from detectors.contract import Detector, ExpectationDetector
from detectors.errors import ConfigError
from detectors.events import Event
from detectors.records import Outcome
from detectors.rules import RuleDetector, Settings, parse_settings
from tests.oracle import deaths, sessions
from tests.oracle.clock import Clock
from tests.oracle.custom import RULE
from tests.oracle.expectations import (
    ExpectationForm,
    expectation_records,
    once_per_key,
    resolve,
)
from tests.oracle.frame import ColumnPlan, EventFrame, build_frame, merge_plans
from tests.oracle.letters import DOCUMENT_AFTER
from tests.oracle.notices import RESCHEDULE_NOTICE
from tests.oracle.results import RESULT_OVERDUE, RESULT_UNACKNOWLEDGED
from tests.oracle.summaries import TextCache

__all__ = ["OracleResult", "detect", "load", "plan_for", "run_oracle"]

#: Expectation detectors the oracle has a column form of, by exact class: a subclass may
#: change any hook, so it is not assumed to behave like its parent.
EXPECTATIONS: dict[type, ExpectationForm] = {
    RescheduleNotice: RESCHEDULE_NOTICE,
    ResultOverdue: RESULT_OVERDUE,
    ResultUnacknowledged: RESULT_UNACKNOWLEDGED,
    DischargeSummaryOverdue: DOCUMENT_AFTER,
    ClinicLetterOverdue: DOCUMENT_AFTER,
    RuleDetector: RULE,
}


@dataclass(frozen=True)
class OracleResult:
    """What the oracle found.

    ``outcomes``: the final record of every decided opportunity, as a streaming run that
    read the same events in event-time order would hold it (one per ``failure_id``).
    ``open``: opportunities the watermark has not decided, outcome ``open``, sorted by
    (detector, failure_id). ``watermark``: epoch seconds, UTC.
    """

    outcomes: list[Outcome]
    open: list[Outcome]
    watermark: float
    events: int
    duplicates: int
    detectors: list[str]


def _unsupported(det: Detector) -> ConfigError:
    return ConfigError(
        f"the batch oracle has no column form of detector {det.name!r} "
        f"({type(det).__name__}); run it without --batch"
    )


def plan_for(settings: Settings) -> ColumnPlan:
    """The frame columns the enabled detectors of ``settings`` read, and for which types."""
    plans: list[ColumnPlan] = []
    for det in settings.detectors:
        form = EXPECTATIONS.get(type(det))
        if form is not None:
            assert isinstance(det, ExpectationDetector)
            plans.append(form.needs(det))
        elif type(det) is ClinicOverbooked:
            plans.append(sessions.needs())
        elif type(det) is ContactAfterDeath:
            plans.append(deaths.needs())
        else:
            raise _unsupported(det)
    return merge_plans(*plans)


def load(events: Iterable[Event], settings: Settings | None = None) -> EventFrame:
    """Step one: the events (any order, duplicates allowed) as a frame holding what the
    detectors of ``settings`` (default: the built-ins) read."""
    settings = settings or parse_settings("", "(built-in defaults)")
    return build_frame(events, plan_for(settings))


def detect(
    frame: EventFrame,
    settings: Settings | None = None,
    as_of: float | None = None,
    *,
    allowed_lateness: float | None = None,
) -> OracleResult:
    """Step two: every enabled detector of ``settings`` over ``frame``.

    ``as_of`` (epoch seconds, UTC) moves the watermark there if that is later than the last
    event time minus ``allowed_lateness`` (seconds; default from the settings).
    """
    settings = settings or parse_settings("", "(built-in defaults)")
    if not frame.covers(plan_for(settings)):
        raise ValueError("the frame was loaded for other settings; load it with these")
    lateness = settings.allowed_lateness if allowed_lateness is None else allowed_lateness
    clock = Clock.of(frame.table["time"].to_numpy(), lateness, as_of)
    texts = TextCache()
    decided: list[Outcome] = []
    still_open: list[Outcome] = []
    with _collector_paused():
        for det in settings.detectors:
            done, pending = _one(det, frame, clock, settings.late_retention, texts)
            decided.extend(done)
            still_open.extend(pending)
    still_open.sort(key=lambda o: (o.detector, o.failure_id))
    return OracleResult(
        outcomes=decided,
        open=still_open,
        watermark=clock.watermark,
        events=frame.received,
        duplicates=frame.duplicates,
        detectors=[d.name for d in settings.detectors],
    )


def _one(
    det: Detector, frame: EventFrame, clock: Clock, late_retention: float, texts: TextCache
) -> tuple[list[Outcome], list[Outcome]]:
    form = EXPECTATIONS.get(type(det))
    if form is not None:
        assert isinstance(det, ExpectationDetector)
        sides = form.sides(det, frame.table)
        if det.opens_once_per_key:
            sides = once_per_key(sides, frame.table)
        resolved = resolve(sides, clock, late_retention)
        return expectation_records(det, resolved, frame, clock, texts, sides.reasons)
    if type(det) is ClinicOverbooked:
        return sessions.clinic_overbooked(frame, clock)
    if type(det) is ContactAfterDeath:
        return deaths.contact_after_death(frame, clock), []
    raise _unsupported(det)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while records are made. They hold no cycles,
    and with a million events alive every collection it triggers walks all of them: about
    a quarter of the detection time at a million events."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_oracle(
    events: Iterable[Event],
    settings: Settings | None = None,
    as_of: float | None = None,
    *,
    allowed_lateness: float | None = None,
) -> list[Outcome]:
    """The decided outcomes of ``events`` under ``settings`` (default: the built-ins), as
    of ``as_of`` (epoch seconds, UTC; default: the last event time minus the allowed
    lateness, in seconds). ``load`` then ``detect`` give the open ones too."""
    frame = load(events, settings)
    return detect(frame, settings, as_of, allowed_lateness=allowed_lateness).outcomes
