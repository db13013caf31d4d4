"""Declarative rules: one YAML file switches detectors on and off, sets thresholds (with
overrides per site, specialty, test...) and defines new "B within T after A" rules.

The file format is documented in ``docs/rules.md``; ``load_settings`` validates it and
every error points at the offending line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from detectors.builtin import BUILTINS
from detectors.config_reader import Invalid, Node, Reader, did_you_mean, read_file, read_yaml
from detectors.contract import (
    CARRIED_ATTRS,
    DEFAULT_TIMEZONE,
    Detector,
    ExpectationDetector,
    LocalClock,
    Thresholds,
)
from detectors.durations import format_duration
from detectors.errors import RulesError
from detectors.events import ATTR_TYPES, Event
from detectors.feeds import FeedError, FeedSpec, parse_feeds

__all__ = [
    "ENGINE_DEFAULTS",
    "EVENT_ATTRS",
    "THRESHOLD_RANGE",
    "EngineSetting",
    "EventPattern",
    "RuleDetector",
    "Settings",
    "load_settings",
    "parse_settings",
    "rules_schema",
]


DAY = 86400.0


@dataclass(frozen=True)
class EngineSetting:
    """One ``engine:`` setting of the rules file: its default and allowed range (seconds)."""

    default: float
    low: float
    high: float
    meaning: str


#: The engine's settings, their defaults and ranges: the one table (``Settings``, the
#: rules file's checks, ``carewatch rules schema`` and docs/rules.md follow it).
ENGINE_DEFAULTS: dict[str, EngineSetting] = {
    "allowed_lateness": EngineSetting(
        600.0, 0.0, 30 * DAY, "how far behind the newest event time an event may arrive"
    ),
    "late_retention": EngineSetting(
        30 * DAY, 0.0, 366 * DAY, "how long a missed opportunity may still turn late"
    ),
    "dedupe_window": EngineSetting(
        7 * DAY, 1.0, 366 * DAY, "how long event ids are remembered to drop re-deliveries"
    ),
    "correction_horizon": EngineSetting(
        30 * DAY, 0.0, 366 * DAY, "how long everything that could still change a decision is kept"
    ),
}


@dataclass(frozen=True)
class Settings:
    """Everything the engine needs, validated. Durations are seconds."""

    detectors: tuple[Detector, ...]
    allowed_lateness: float = ENGINE_DEFAULTS["allowed_lateness"].default
    late_retention: float = ENGINE_DEFAULTS["late_retention"].default
    dedupe_window: float = ENGINE_DEFAULTS["dedupe_window"].default
    #: how long (s) everything that could still change a decision is kept; events further
    #: behind the watermark are refused (``beyond-horizon``)
    correction_horizon: float = ENGINE_DEFAULTS["correction_horizon"].default
    site_labels: tuple[str, ...] = ()
    #: the site's IANA timezone: times in failure sentences are given in it
    timezone: str = DEFAULT_TIMEZONE
    feeds: tuple[FeedSpec, ...] = ()  # metrics.feeds (detectors.feeds)
    source: str = "(built-in defaults)"
    disabled: tuple[str, ...] = field(default=())
    #: The ``plugins:`` entries, as written (imported into ``detectors`` unless the
    #: settings were read with ``import_plugins=False``).
    plugins: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class EventPattern:
    """Matches events of ``type`` whose attrs contain every ``attrs`` item."""

    type: str
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, event: Event) -> bool:
        """True when ``event`` is of this type and carries these attrs."""
        if event.type != self.type:
            return False
        a = event.attrs
        return all(a.get(k) == v for k, v in self.attrs.items())


class RuleDetector(ExpectationDetector):
    """An expectation rule defined in YAML: when A, expect B with the same ref within T."""

    name: ClassVar[str] = ""  # set per instance (see __init__)

    def __init__(
        self,
        name: str,
        key: str,
        when: list[EventPattern],
        expect: list[EventPattern],
        void_on: list[EventPattern],
        thresholds: Thresholds,
        opened_words: str,
        expected_words: str,
    ) -> None:
        self.name = name  # type: ignore[misc]
        self.key_ref = key  # type: ignore[misc]
        self._when = when
        self._expect = expect
        self._void = void_on
        self.opens = tuple(sorted({p.type for p in when}))  # type: ignore[misc]
        self.closes = tuple(sorted({p.type for p in expect}))  # type: ignore[misc]
        self.voids = tuple(sorted({p.type for p in void_on}))  # type: ignore[misc]
        self.thresholds = thresholds
        self.opened_words = opened_words  # type: ignore[misc]
        self.expected_words = expected_words  # type: ignore[misc]

    @property
    def when(self) -> tuple[EventPattern, ...]:
        """The patterns of events that open an opportunity."""
        return tuple(self._when)

    @property
    def expect(self) -> tuple[EventPattern, ...]:
        """The patterns of events that close one."""
        return tuple(self._expect)

    @property
    def void_on(self) -> tuple[EventPattern, ...]:
        """The patterns of events that void one."""
        return tuple(self._void)

    def deadline(self, event: Event) -> float | None:
        if not any(p.matches(event) for p in self._when):
            return None
        return event.time + self.thresholds.for_event(event)["within"]

    def is_close(self, event: Event) -> bool:
        return any(p.matches(event) for p in self._expect)

    def is_void(self, event: Event) -> bool:
        return any(p.matches(event) for p in self._void)


# ---------------------------------------------------------------- reading the file

#: The range of every detector threshold and rule deadline (seconds).
THRESHOLD_RANGE: tuple[float, float] = (0.0, 366 * DAY)

#: The attrs each built-in event type carries (docs/events.md), which ``when:`` may name;
#: every type may also carry ``CARRIED_ATTRS`` (site, specialty, clinic, test, priority).
EVENT_ATTRS: dict[str, frozenset[str]] = {
    "appointment.booked": frozenset({"start"}),
    "appointment.rescheduled": frozenset(
        {"start", "previous_start", "initiated_by", "deceased", "reason"}
    ),
    "appointment.cancelled": frozenset({"previous_start", "initiated_by", "reason", "deceased"}),
    "appointment.attended": frozenset(),
    "appointment.missed": frozenset(),
    "patient.notified": frozenset({"channel"}),
    "order.placed": frozenset(),
    "order.cancelled": frozenset(),
    "result.reported": frozenset({"abnormal", "critical"}),
    "result.acknowledged": frozenset(),
    "document.sent": frozenset({"kind", "recipient"}),
    "encounter.discharged": frozenset(),
    "patient.died": frozenset(),
    "session.capacity": frozenset({"capacity", "start"}),
}

_TOP = ("engine", "timezone", "metrics", "detectors", "rules", "plugins")
#: Switches (true/false) a built-in detector takes besides its durations.
_SWITCHES: dict[str, tuple[str, ...]] = {"reschedule-notice": ("monitor_unknown_initiator",)}
_RULE = (
    "name",
    "key",
    "when",
    "expect",
    "within",
    "void_on",
    "overrides",
    "opened",
    "expected",
    "opening_attrs",
)
_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")
_OFF = frozenset({"off", "Off", "OFF", "false", "False", "FALSE"})
_ON = frozenset({"on", "On", "ON", "true", "True", "TRUE"})


@dataclass
class _WhenCheck:
    """A ``when:`` attr to check once every declaration (rules, plugins) is known."""

    detector: str
    opens: tuple[str, ...]
    attr: str
    node: Node


@dataclass
class _Read:
    """What reading a rules file gathers besides the detectors."""

    r: Reader
    checks: list[_WhenCheck] = field(default_factory=list)
    #: attrs declared per event type by rules (``when`` patterns, ``opening_attrs``) and
    #: plugins (``event_attrs``)
    declared: dict[str, set[str]] = field(default_factory=dict)

    def declare(self, etype: str, attrs: Iterable[str]) -> None:
        self.declared.setdefault(etype, set()).update(attrs)

    def known_attrs(self, etype: str) -> set[str]:
        return {
            *CARRIED_ATTRS,
            *EVENT_ATTRS.get(etype, ()),
            *self.declared.get(etype, ()),
        }


def attr_value(r: Reader, attr: str, node: Node) -> Any:
    """A ``when:`` value: typed attrs (``critical``, ``abnormal``, ``deceased``: true or
    false; ``capacity``: a whole number) by their type, an unquoted ``true``/``false`` as
    a boolean, ``null`` as absent, anything else as the text written (``NO`` stays
    ``"NO"``, ``010`` stays ``"010"``)."""
    want = ATTR_TYPES.get(attr, (str,))[0]
    if want is bool:
        return r.boolean(node, f"attrs.{attr}")
    if want is int:
        return r.integer(node, f"attrs.{attr}", -(2**63), 2**63 - 1)
    if node.value is None:
        return None
    if not isinstance(node.value, str):
        raise r.fail(node, f"attrs.{attr} must be one value (text, true or false)")
    if not node.quoted and attr not in ATTR_TYPES:
        if node.value in ("true", "True", "TRUE"):
            return True
        if node.value in ("false", "False", "FALSE"):
            return False
    return node.value


def _patterns(rd: _Read, node: Node | None, what: str, required: bool) -> list[EventPattern]:
    r = rd.r
    if node is None or node.value is None:
        if required:
            raise r.fail(node, f"{what} needs at least one event type")
        return []
    items = node.value if isinstance(node.value, list) else [node]
    out = []
    before = len(r.problems)
    for item in items:
        with r.attempt():
            if isinstance(item.value, str) and _TYPE_NAME.fullmatch(item.value):
                out.append(EventPattern(item.value))
                continue
            if not isinstance(item.value, dict):
                raise r.fail(
                    item,
                    f"{what} must be an event type (a name such as order.placed) or "
                    "{type: ..., attrs: {...}}",
                )
            conf = r.mapping(item, what, ("type", "attrs"))
            etype = conf.get("type")
            if etype is None or not isinstance(etype.value, str):
                raise r.fail(item, f"{what} needs a 'type' (an event type such as order.placed)")
            if not _TYPE_NAME.fullmatch(etype.value):
                raise r.fail(etype, f"{etype.value!r} is not an event type such as order.placed")
            attrs: dict[str, Any] = {}
            for attr, value in r.mapping(conf.get("attrs"), f"{what} attrs").items():
                with r.attempt():
                    attrs[attr] = attr_value(r, attr, value)
            rd.declare(etype.value, attrs)
            out.append(EventPattern(etype.value, attrs))
    if required and not out and len(r.problems) == before:
        raise r.fail(node, f"{what} needs at least one event type")
    return out


def _thresholds(
    rd: _Read,
    conf: dict[str, Node],
    defaults: Mapping[str, float],
    name: str,
    opens: Sequence[str],
) -> Thresholds:
    r = rd.r
    values = dict(defaults)
    for k in defaults:
        if k in conf:
            with r.attempt():
                values[k] = r.duration(conf[k], k, *THRESHOLD_RANGE)
    overrides = []
    with r.attempt():
        items = r.sequence(conf.get("overrides"), "overrides")
        for item in items:
            with r.attempt():
                o = r.mapping(item, "an override")
                r.unknown_keys(o, ("when", *defaults), f"an override of {name}")
                when = r.mapping(o.get("when"), "when")
                if not when:
                    raise r.fail(
                        item, "an override needs 'when: {attr: value}' saying where it applies"
                    )
                if not any(k in o for k in defaults):
                    raise r.fail(item, f"an override must set one of {sorted(defaults)}")
                vals = {}
                for k in defaults:
                    if k in o:
                        with r.attempt():
                            vals[k] = r.duration(o[k], k, *THRESHOLD_RANGE)
                attrs: dict[str, Any] = {}
                for attr, value in when.items():
                    rd.checks.append(_WhenCheck(name, tuple(opens), attr, value))
                    with r.attempt():
                        attrs[attr] = attr_value(r, attr, value)
                overrides.append((attrs, vals))
    return Thresholds(values, overrides)


def _builtin(rd: _Read, name: str, cls: type, node: Node | None) -> Detector | None:
    """The built-in detector ``name`` as configured, or ``None`` when switched off."""
    r = rd.r
    if node is not None and isinstance(node.value, str) and not node.quoted:
        if node.value in _OFF:
            return None
        if node.value in _ON:
            node = None
    if node is not None and isinstance(node.value, str):
        raise r.fail(node, f"detector {name}: write off, on, or its settings (key: value lines)")
    defaults: dict[str, float] = getattr(cls, "DEFAULTS", {})
    switches = _SWITCHES.get(name, ())
    allowed = ("enabled", *defaults, *switches, *(["overrides"] if defaults else []))
    conf = r.mapping(node, f"detector {name}")
    r.unknown_keys(conf, allowed, f"detector {name}")
    enabled = True
    before = len(r.problems)
    if "enabled" in conf:
        with r.attempt():
            enabled = r.boolean(conf["enabled"], "enabled")
    options = {}
    for k in switches:
        if k in conf:
            with r.attempt():
                options[k] = r.boolean(conf[k], k)
    thresholds = (
        _thresholds(rd, conf, defaults, name, tuple(getattr(cls, "opens", ())))
        if defaults
        else None
    )
    if len(r.problems) > before:
        raise Invalid(f"detector {name}")
    if not enabled:
        return None
    det: Detector = cls(thresholds, **options) if defaults else cls(**options)
    return det


def _rule(rd: _Read, node: Node, names: set[str]) -> RuleDetector:
    r = rd.r
    rule = r.mapping(node, "a rule", _RULE)
    before = len(r.problems)
    missing = [k for k in ("name", "key", "when", "expect", "within") if k not in rule]
    for k in missing:
        r.problem(node, f"a rule needs '{k}'")
    name = None
    if "name" in rule:
        with r.attempt():
            name = r.text(rule["name"], "a rule's name")
    if name is not None:
        if name in names:
            r.problem(rule["name"], f"the name {name!r} is already used")
        names.add(name)
    key = None
    if "key" in rule:
        with r.attempt():
            key = r.text(rule["key"], "key (a ref, e.g. encounter or order)")
    within = None
    if "within" in rule:
        with r.attempt():
            within = r.duration(rule["within"], "within", *THRESHOLD_RANGE)
    when = _patterns(rd, rule.get("when"), "when", "when" in rule)
    expect = _patterns(rd, rule.get("expect"), "expect", "expect" in rule)
    void_on = _patterns(rd, rule.get("void_on"), "void_on", False)
    opens = tuple(sorted({p.type for p in when}))
    with r.attempt():
        for item in r.sequence(rule.get("opening_attrs"), "opening_attrs"):
            with r.attempt():
                attr = r.text(item, "an attr name")
                assert attr is not None
                for etype in opens:
                    rd.declare(etype, (attr,))
    opened = expected = None
    with r.attempt():
        opened = r.text(rule.get("opened"), "opened", required=False)
    with r.attempt():
        expected = r.text(rule.get("expected"), "expected", required=False)
    overrides = {k: v for k, v in rule.items() if k == "overrides"}
    thresholds = _thresholds(rd, overrides, {"within": within or 0.0}, name or "a rule", opens)
    if name is None or key is None or within is None or not when or not expect:
        if len(r.problems) == before:  # never drop a rule without saying why
            r.problem(node, "this rule is incomplete")
        raise Invalid("an incomplete rule")
    return RuleDetector(
        name=name,
        key=key,
        when=when,
        expect=expect,
        void_on=void_on,
        thresholds=thresholds,
        opened_words=opened or f"{name}: {{{key}}} opened",
        expected_words=expected or "the expected event",
    )


def _at(node: Node, keys: Sequence[str]) -> Node:
    """The node at ``keys`` under ``node``, or the deepest one of them that exists."""
    for key in keys:
        found = node.get(key)
        if found is None:
            break
        node = found
    return node


def parse_settings(text: str, source: str = "<rules>", *, import_plugins: bool = True) -> Settings:
    """Validate a rules document and build the settings (detectors included). With
    ``import_plugins=False`` plugin modules are found and checked but not imported
    (``detectors`` then leaves them out): a plugin is code (``detectors.plugins``).

    Raises ``RulesError`` (``ConfigProblems`` when the document was read) naming every
    problem of the file with its line.
    """
    root = read_yaml(text, source)
    r = Reader(source)
    rd = _Read(r)
    try:
        doc = r.mapping(root, "the rules file", _TOP)
    except Invalid:
        r.finish()
        raise
    timing: dict[str, float] = {}
    with r.attempt():
        for k, node in r.mapping(doc.get("engine"), "engine", ENGINE_DEFAULTS).items():
            with r.attempt():
                spec = ENGINE_DEFAULTS[k]
                timing[k] = r.duration(node, k, spec.low, spec.high)

    timezone = DEFAULT_TIMEZONE
    with r.attempt():
        tz_node = doc.get("timezone")
        if tz_node is not None:
            tz_text = r.text(tz_node, "a timezone (an IANA name such as Europe/London)")
            if tz_text is not None:
                try:
                    LocalClock(tz_text)
                except ValueError as exc:
                    r.problem(tz_node, str(exc))
                else:
                    timezone = tz_text

    feeds: tuple[FeedSpec, ...] = ()
    sites: list[str] = []
    with r.attempt():
        metrics = r.mapping(doc.get("metrics"), "metrics", ("site_labels", "feeds"))
        specs: list[FeedSpec] = []
        with r.attempt():
            # one feed at a time: every feed's problem is reported, at its own line
            for name, conf in r.mapping(metrics.get("feeds"), "feeds").items():
                try:
                    specs.extend(parse_feeds({name: conf.plain()}))
                except FeedError as exc:
                    r.problem(_at(conf, exc.keys[1:]), str(exc))
        feeds = tuple(specs)
        with r.attempt():
            for item in r.sequence(metrics.get("site_labels"), "site_labels"):
                with r.attempt():
                    site = r.text(item, "a site label")
                    assert site is not None
                    sites.append(site)

    detectors: list[Detector] = []
    disabled: list[str] = []
    dets_conf: dict[str, Node] = {}
    with r.attempt():
        dets_conf = r.mapping(doc.get("detectors"), "detectors")
        for name, node in dets_conf.items():
            if name not in BUILTINS:
                r.problem(
                    node,
                    f"unknown detector {name!r}{did_you_mean(name, BUILTINS)} "
                    f"(built-ins are {', '.join(BUILTINS)})",
                )
    for name, cls in BUILTINS.items():
        with r.attempt():
            det = _builtin(rd, name, cls, dets_conf.get(name))
            if det is None:
                disabled.append(name)
            else:
                detectors.append(det)

    names = {d.name for d in detectors} | set(disabled)
    with r.attempt():
        for node in r.sequence(doc.get("rules"), "rules (each starting with '- name:')"):
            with r.attempt():
                detectors.append(_rule(rd, node, names))

    plugins: list[str] = []
    with r.attempt():
        for node in r.sequence(doc.get("plugins"), "plugins ('package.module:ClassName')"):
            with r.attempt():
                entry = r.text(node, "a plugin")
                assert entry is not None
                plugins.append(entry)
                det = _load_plugin(entry, r, node, import_plugins)
                if det is None:
                    continue
                if det.name in names:
                    raise r.fail(node, f"the name {det.name!r} is already used")
                names.add(det.name)
                for etype, attrs in (getattr(det, "event_attrs", None) or {}).items():
                    rd.declare(str(etype), map(str, attrs))
                detectors.append(det)

    # a plugin not imported may declare attrs: only an imported one is known
    if import_plugins or not plugins:
        for check in rd.checks:
            known = set().union(*(rd.known_attrs(t) for t in check.opens))
            if check.attr not in known:
                r.problem(
                    check.node,
                    f"when: no event that opens {check.detector} "
                    f"({', '.join(check.opens)}) carries attrs.{check.attr}"
                    f"{did_you_mean(check.attr, known)} (they carry {', '.join(sorted(known))}; "
                    "a rule declares more with opening_attrs)",
                )
    r.finish()
    engine = {k: timing.get(k, spec.default) for k, spec in ENGINE_DEFAULTS.items()}
    return Settings(
        detectors=tuple(detectors),
        allowed_lateness=engine["allowed_lateness"],
        late_retention=engine["late_retention"],
        dedupe_window=engine["dedupe_window"],
        correction_horizon=engine["correction_horizon"],
        site_labels=tuple(sites),
        timezone=timezone,
        feeds=feeds,
        source=source,
        disabled=tuple(disabled),
        plugins=tuple(plugins),
    )


def _load_plugin(spec: str, r: Reader, node: Node, import_plugins: bool) -> Detector | None:
    """Import ``package.module:ClassName`` and build the detector with no arguments
    (only find and check the module when not ``import_plugins``)."""
    import importlib

    from detectors.plugins import PluginRefused, locate_plugin, split_plugin

    try:
        module_name, class_name = split_plugin(spec)
        locate_plugin(module_name)
    except PluginRefused as exc:
        raise r.fail(node, f"cannot load plugin {spec!r}: {exc}") from None
    if not import_plugins:
        return None
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise r.fail(node, f"cannot load plugin {spec!r}: {exc}") from None
    det = cls() if isinstance(cls, type) else None
    if not isinstance(det, Detector) or not det.name:
        raise r.fail(
            node,
            f"{spec!r} is not a detector class (subclass ExpectationDetector "
            "or ViolationDetector and set a name)",
        )
    return det


def load_settings(path: str | Path | None, *, import_plugins: bool = True) -> Settings:
    """Settings from a rules file, or the built-in defaults when ``path`` is ``None``
    (``import_plugins``: see ``parse_settings``)."""
    if path is None:
        return parse_settings("", "(built-in defaults)")
    data = read_file(path, "rules file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulesError(f"not UTF-8 text: {exc.reason}", source=str(path)) from None
    return parse_settings(text, str(path), import_plugins=import_plugins)


# ---------------------------------------------------------------- JSON Schema for editors

#: JSON Schema of a duration as an editor sees it (``48h``, ``1h30m``, or ``0``).
DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*([0-9]+(\.[0-9]+)?\s*[smhdwSMHDW]\s*)+$"},
        {"const": 0},
        {"const": "0"},
    ],
    "description": "a duration: 90s, 10m, 48h, 7d, 2w or combined (1h30m); 0 needs no unit",
}
#: One value written as text (an editor may see a number or a boolean: Carewatch reads
#: the text as written).
TEXT_SCHEMA: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def _pattern_schema() -> dict[str, Any]:
    one = {
        "anyOf": [
            {"type": "string", "pattern": _TYPE_NAME.pattern + "$"},
            {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "attrs": {
                        "type": ["object", "null"],
                        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
                    },
                },
                "required": ["type"],
                "additionalProperties": False,
            },
        ]
    }
    return {"anyOf": [one, {"type": "array", "minItems": 1, "items": one}]}


def _overrides_schema(settings: Sequence[str], opens: Sequence[str]) -> dict[str, Any]:
    attrs = sorted(set(CARRIED_ATTRS).union(*(EVENT_ATTRS.get(t, ()) for t in opens)))
    return {
        "type": ["array", "null"],
        "items": {
            "type": "object",
            "properties": {
                "when": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
                    "description": "attr: value pairs of the opening event, all must match; "
                    f"the attrs it carries: {', '.join(attrs)} (and those rules or "
                    "plugins declare)",
                },
                **{k: DURATION_SCHEMA for k in settings},
            },
            "required": ["when"],
            "minProperties": 2,
            "additionalProperties": False,
        },
    }


def rules_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the rules file, for editors that check YAML as it
    is typed. It describes the file as such an editor reads it (YAML 1.2); ``rules
    check`` remains the full check (ranges, misspelt attrs, plugins)."""
    detectors: dict[str, Any] = {}
    for name, cls in BUILTINS.items():
        defaults: dict[str, float] = getattr(cls, "DEFAULTS", {})
        props: dict[str, Any] = {"enabled": {"type": "boolean"}}
        for k, seconds in defaults.items():
            props[k] = {**DURATION_SCHEMA, "default": format_duration(seconds)}
        for k in _SWITCHES.get(name, ()):
            props[k] = {"type": "boolean"}
        if defaults:
            props["overrides"] = _overrides_schema(list(defaults), getattr(cls, "opens", ()))
        detectors[name] = {
            "anyOf": [
                {"enum": ["off", "on", True, False, None]},
                {"type": "object", "properties": props, "additionalProperties": False},
            ]
        }
    rule_props: dict[str, Any] = {
        "name": {"type": "string", "minLength": 1},
        "key": {"type": "string", "minLength": 1},
        "when": _pattern_schema(),
        "expect": _pattern_schema(),
        "void_on": {"anyOf": [_pattern_schema(), {"type": "null"}]},
        "within": DURATION_SCHEMA,
        "overrides": _overrides_schema(["within"], ()),
        "opened": {"type": "string"},
        "expected": {"type": "string"},
        "opening_attrs": {"type": "array", "items": {"type": "string"}},
    }
    assert set(rule_props) == set(_RULE)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Carewatch rules file",
        "description": "docs/rules.md",
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": {
            "engine": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    k: {
                        **DURATION_SCHEMA,
                        "default": format_duration(spec.default),
                        "description": f"{spec.meaning} (from {format_duration(spec.low)} "
                        f"to {format_duration(spec.high)})",
                    }
                    for k, spec in ENGINE_DEFAULTS.items()
                },
            },
            "timezone": {
                **TEXT_SCHEMA,
                "default": DEFAULT_TIMEZONE,
                "description": "the site's IANA timezone (e.g. Europe/London): times in "
                "failure sentences are given in it",
            },
            "metrics": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    "site_labels": {"type": ["array", "null"], "items": TEXT_SCHEMA},
                    "feeds": {
                        "type": ["object", "null"],
                        "additionalProperties": {"type": ["object", "null"]},
                        "description": "docs/monitoring.md#feeds",
                    },
                },
            },
            "detectors": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": detectors,
            },
            "rules": {
                "type": ["array", "null"],
                "items": {
                    "type": "object",
                    "properties": rule_props,
                    "required": ["name", "key", "when", "expect", "within"],
                    "additionalProperties": False,
                },
            },
            "plugins": {
                "type": ["array", "null"],
                "items": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"},
            },
        },
    }
