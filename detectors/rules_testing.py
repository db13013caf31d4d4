"""Unit tests for a site's rules file, written in YAML (``carewatch rules test FILE...``).

A test file names a rules file, a start time, and test cases: input events (times
relative to the start allowed: ``+2h``, ``-30m``), an as-of time, and the outcomes
expected per detector. Each case runs through the engine with ``detectors.testing``;
a failing case shows a diff of the outcomes expected against those found. The format
is documented in ``docs/rules.md`` ("Testing rules").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.config_reader import Invalid, Node, Reader, did_you_mean, read_file, read_yaml
from detectors.durations import parse_duration
from detectors.errors import ConfigError, EventError
from detectors.events import Event, event_from_dict, format_time, parse_time
from detectors.rules import Settings, attr_value, load_settings
from detectors.testing import TestRun, run_events

__all__ = [
    "OUTCOMES",
    "CaseResult",
    "RuleTestCase",
    "RuleTestFile",
    "load_rule_tests",
    "run_case",
    "run_rule_tests",
]

#: What ``expect:`` may say of an opportunity.
OUTCOMES = ("met", "late", "missed", "void", "open", "violation")
_TOP = ("rules", "start", "tests")
_CASE = ("name", "events", "as_of", "expect")
_EVENT = ("id", "type", "time", "patient", "refs", "attrs")


@dataclass(frozen=True)
class RuleTestCase:
    """One case of a test file: events, an as-of time and the expected outcomes
    (``{detector: {key: [outcome, ...]}}``, outcomes in opening order)."""

    name: str
    line: int
    events: tuple[Event, ...]
    as_of: float
    expect: dict[str, dict[str, list[str]]]


@dataclass(frozen=True)
class RuleTestFile:
    """A test file read and checked: the rules it tests and its cases."""

    source: str
    settings: Settings
    cases: tuple[RuleTestCase, ...]


@dataclass
class CaseResult:
    """The result of one case: ``diff`` lines, empty when it passed."""

    case: RuleTestCase
    diff: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every expected outcome was found, and nothing else of those detectors."""
        return not self.diff


def _time(r: Reader, node: Node | None, what: str, start: float | None) -> float:
    """An ISO time with an offset, or ``+D``/``-D`` (a duration) from ``start``."""
    text = r.text(node, what)
    assert text is not None
    if text[0] in "+-":
        if start is None:
            raise r.fail(node, f"{what} {text!r} is relative: give the test file a 'start'")
        try:
            seconds = parse_duration(text[1:])
        except ConfigError as exc:
            raise r.fail(node, f"{what}: {exc}") from None
        return start + seconds if text[0] == "+" else start - seconds
    try:
        return parse_time(text, field_name=what)
    except EventError as exc:
        raise r.fail(node, f"{what}: {exc}; write an ISO time with its offset or +2h") from None


def _event(r: Reader, node: Node, index: int, start: float | None) -> Event:
    conf = r.mapping(node, "an event", _EVENT)
    obj: dict[str, Any] = {"id": f"e{index + 1}", "patient": "P1"}
    for k in ("id", "type", "patient"):
        if k in conf:
            obj[k] = r.text(conf[k], k, required=k == "type")
    if "type" not in conf:
        raise r.fail(node, "an event needs a 'type'")
    obj["time"] = format_time(_time(r, conf.get("time"), "time", start))
    obj["refs"] = {}
    for ref, value in r.mapping(conf.get("refs"), "refs").items():
        obj["refs"][ref] = r.text(value, f"refs.{ref}")
    obj["attrs"] = {}
    for attr, value in r.mapping(conf.get("attrs"), "attrs").items():
        obj["attrs"][attr] = attr_value(r, attr, value)
    try:
        return event_from_dict(obj)
    except EventError as exc:
        raise r.fail(node, f"not a valid event: {exc}") from None


def _expect(r: Reader, node: Node | None, names: set[str]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for detector, keys in r.mapping(node, "expect").items():
        with r.attempt():
            if detector not in names:
                raise r.fail(
                    keys,
                    f"the rules file has no detector {detector!r} switched on"
                    f"{did_you_mean(detector, names)}",
                )
            table: dict[str, list[str]] = {}
            for key, value in r.mapping(keys, f"expect.{detector}").items():
                with r.attempt():
                    items = value.value if isinstance(value.value, list) else [value]
                    table[key] = [r.choice(item, "an outcome", OUTCOMES) for item in items]
            out[detector] = table
    return out


def load_rule_tests(path: str | Path) -> RuleTestFile:
    """Read and check a test file (every problem at once, with its line); its rules
    file is loaded relative to it (plugins imported: a test runs the rules)."""
    source = str(path)
    root = read_yaml(read_file(path, "rules test file"), source)
    r = Reader(source)
    start: float | None = None
    cases: list[RuleTestCase] = []
    try:
        doc = r.mapping(root, "a rules test file", _TOP)
    except Invalid:
        r.finish()
        raise
    # a broken rules file stops here, with its own file:line messages
    rules = None
    with r.attempt():
        rules = r.text(doc.get("rules"), "rules (the rules file to test)", required=False)
    settings = load_settings(Path(source).parent / rules if rules else None)
    with r.attempt():
        if doc.get("start") is not None:
            start = _time(r, doc.get("start"), "start", None)
    names = {d.name for d in settings.detectors}
    with r.attempt():
        items = r.sequence(doc.get("tests"), "tests")
        if not items:
            raise r.fail(root, "a rules test file needs 'tests:', a list of test cases")
        for item in items:
            with r.attempt():
                conf = r.mapping(item, "a test case", _CASE)
                name = r.text(conf.get("name"), "a test case's name")
                assert name is not None
                events = []
                for i, ev_node in enumerate(r.sequence(conf.get("events"), "events")):
                    with r.attempt():
                        events.append(_event(r, ev_node, i, start))
                if "as_of" not in conf:
                    raise r.fail(
                        item, "a test case needs 'as_of' (the time the outcomes are read at)"
                    )
                as_of = _time(r, conf["as_of"], "as_of", start)
                if "expect" not in conf:
                    raise r.fail(item, "a test case needs 'expect' (outcomes per detector)")
                expect = _expect(r, conf["expect"], names)
                cases.append(RuleTestCase(name, item.line, tuple(events), as_of, expect))
    r.finish()
    return RuleTestFile(source, settings, tuple(cases))


def _found(run: TestRun, detectors: set[str]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {d: {} for d in detectors}
    records = [o for o in run.latest.values() if o.detector in detectors]
    records += [o for o in run.open if o.detector in detectors]
    for o in sorted(records, key=lambda o: (o.opened_at, o.failure_id)):
        out[o.detector].setdefault(o.key, []).append(o.outcome)
    return out


def _lines(table: dict[str, dict[str, list[str]]]) -> list[str]:
    lines = []
    for detector in sorted(table):
        lines.append(f"{detector}:")
        for key in sorted(table[detector]):
            outcomes = table[detector][key]
            shown = outcomes[0] if len(outcomes) == 1 else f"[{', '.join(outcomes)}]"
            lines.append(f"  {key}: {shown}")
    return lines


def run_case(settings: Settings, case: RuleTestCase) -> CaseResult:
    """Run one case through the engine and compare the outcomes of the detectors it
    names (``diff``: a unified diff, expected as ``-``, found as ``+``)."""
    run = run_events(case.events, rules=settings, as_of=case.as_of)
    found = _found(run, set(case.expect))
    expected = {d: dict(keys) for d, keys in case.expect.items()}
    if found == expected:
        return CaseResult(case)
    diff = difflib.unified_diff(
        _lines(expected), _lines(found), "expected", "found", lineterm="", n=99
    )
    return CaseResult(case, list(diff))


def run_rule_tests(test_file: RuleTestFile) -> list[CaseResult]:
    """Run every case of a test file."""
    return [run_case(test_file.settings, case) for case in test_file.cases]
