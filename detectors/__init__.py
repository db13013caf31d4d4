"""Carewatch's detection core: canonical events in, outcome records out, in event time.

Knows nothing of files, Kafka or faust (those are ``streams``). The pieces::

    from detectors import Engine, load_settings, event_from_dict

    settings = load_settings("site-rules.yaml")          # or None for the defaults
    engine = Engine.from_settings(settings, sink=print)  # every Outcome as decided
    engine.process(event_from_dict({...}))
    engine.advance_to(as_of)                              # epoch seconds, UTC

Writing a detector: ``detectors.contract`` (and ``docs/extending.md``); trying one on a
handful of events: ``detectors.testing``.
"""

from detectors.contract import (
    Context,
    Detector,
    ExpectationDetector,
    Thresholds,
    ViolationDetector,
)
from detectors.engine import Engine
from detectors.errors import (
    CarewatchError,
    ConfigError,
    EventError,
    InputError,
    RulesError,
    RuntimeFault,
)
from detectors.events import BUILTIN_TYPES, Event, event_from_dict, format_time, parse_time
from detectors.records import FAILURE_OUTCOMES, OUTCOMES, Outcome, failure_id
from detectors.rules import Settings, load_settings, parse_settings

__all__ = [
    "BUILTIN_TYPES",
    "FAILURE_OUTCOMES",
    "OUTCOMES",
    "CarewatchError",
    "ConfigError",
    "Context",
    "Detector",
    "Engine",
    "Event",
    "EventError",
    "ExpectationDetector",
    "InputError",
    "Outcome",
    "RulesError",
    "RuntimeFault",
    "Settings",
    "Thresholds",
    "ViolationDetector",
    "event_from_dict",
    "failure_id",
    "format_time",
    "load_settings",
    "parse_settings",
    "parse_time",
]
