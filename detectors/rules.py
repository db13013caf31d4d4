"""Declarative rules: one YAML file switches detectors on and off, sets thresholds (with
overrides per site, specialty, test...) and defines new "B within T after A" rules.

The file format is documented in ``docs/rules.md``; ``load_settings`` validates it and
every error points at the offending line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from detectors.builtin import BUILTINS
from detectors.contract import Detector, ExpectationDetector, Thresholds
from detectors.durations import parse_duration
from detectors.errors import ConfigError, RulesError
from detectors.events import Event
from detectors.feeds import FeedSpec, parse_feeds

__all__ = ["EventPattern", "RuleDetector", "Settings", "load_settings", "parse_settings"]

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Settings:
    """Everything the engine needs, validated. Durations are seconds."""

    detectors: tuple[Detector, ...]
    allowed_lateness: float = 600.0
    late_retention: float = 30 * 86400.0
    dedupe_window: float = 7 * 86400.0
    #: how long (s) everything that could still change a decision is kept; events further
    #: behind the watermark are refused (``beyond-horizon``)
    correction_horizon: float = 30 * 86400.0
    site_labels: tuple[str, ...] = ()
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


# ---------------------------------------------------------------- YAML with line numbers


def _compose(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError(f"not valid YAML: {problem}", source=source, line=line) from None
    lines: dict[Path_, int] = {}
    if node is None:
        return {}, lines
    constructor = yaml.SafeLoader("")

    def walk(n: yaml.Node, path: Path_) -> Any:
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for k, v in n.value:
                key = constructor.construct_object(k, deep=True)
                if key in out:
                    raise RulesError(
                        f"{key!r} is given twice", source=source, line=k.start_mark.line + 1
                    )
                out[key] = walk(v, (*path, key))
                lines[(*path, key)] = k.start_mark.line + 1
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(v, (*path, i)) for i, v in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    return walk(node, ()), lines


class _Checker:
    def __init__(self, source: str, lines: dict[Path_, int]) -> None:
        self.source = source
        self.lines = lines

    def fail(self, path: Path_, message: str) -> RulesError:
        line = None
        p = path
        while line is None and p is not None:
            line = self.lines.get(p)
            p = p[:-1] if p else None  # type: ignore[assignment]
        return RulesError(message, source=self.source, line=line)

    def mapping(self, value: Any, path: Path_, what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"{what} must be a mapping (key: value lines)")
        return value

    def keys(self, value: dict[str, Any], allowed: set[str], path: Path_, what: str) -> None:
        for k in value:
            if k not in allowed:
                raise self.fail(
                    (*path, k), f"unknown key {k!r} in {what}; expected one of {sorted(allowed)}"
                )

    def duration(self, value: Any, path: Path_) -> float:
        try:
            return parse_duration(value)
        except ConfigError as exc:
            raise self.fail(path, str(exc)) from None

    def patterns(self, value: Any, path: Path_, what: str) -> list[EventPattern]:
        items = value if isinstance(value, list) else [value]
        out = []
        for i, item in enumerate(items):
            p = (*path, i) if isinstance(value, list) else path
            if isinstance(item, str) and item:
                out.append(EventPattern(item))
            elif isinstance(item, dict):
                self.keys(item, {"type", "attrs"}, p, what)
                etype = item.get("type")
                if not isinstance(etype, str) or not etype:
                    raise self.fail(
                        p, f"{what} needs a 'type' (an event type such as order.placed)"
                    )
                attrs = self.mapping(item.get("attrs"), (*p, "attrs"), f"{what} attrs")
                out.append(EventPattern(etype, dict(attrs)))
            else:
                raise self.fail(p, f"{what} must be an event type or {{type: ..., attrs: {{...}}}}")
        if not out:
            raise self.fail(path, f"{what} needs at least one event type")
        return out

    def thresholds(
        self, conf: dict[str, Any], defaults: Mapping[str, float], path: Path_, what: str
    ) -> Thresholds:
        values = dict(defaults)
        for k in defaults:
            if k in conf:
                values[k] = self.duration(conf[k], (*path, k))
        overrides = []
        raw = conf.get("overrides") or []
        if not isinstance(raw, list):
            raise self.fail((*path, "overrides"), "overrides must be a list")
        for i, item in enumerate(raw):
            p = (*path, "overrides", i)
            item = self.mapping(item, p, "an override")
            self.keys(item, {"when", *defaults}, p, f"an override of {what}")
            when = self.mapping(item.get("when"), (*p, "when"), "when")
            if not when:
                raise self.fail(
                    p, "an override needs 'when: {attr: value}' saying where it applies"
                )
            vals = {k: self.duration(item[k], (*p, k)) for k in defaults if k in item}
            if not vals:
                raise self.fail(p, f"an override must set one of {sorted(defaults)}")
            overrides.append((when, vals))
        return Thresholds(values, overrides)


_TOP = {"engine", "metrics", "detectors", "rules", "plugins"}
_ENGINE = {"allowed_lateness", "late_retention", "dedupe_window", "correction_horizon"}
#: Switches (true/false) a built-in detector takes besides its durations.
_SWITCHES: dict[str, tuple[str, ...]] = {"reschedule-notice": ("monitor_unknown_initiator",)}
_RULE = {"name", "key", "when", "expect", "within", "void_on", "overrides", "opened", "expected"}


def parse_settings(text: str, source: str = "<rules>", *, import_plugins: bool = True) -> Settings:
    """Validate a rules document and build the settings (detectors included). With
    ``import_plugins=False`` plugin modules are found and checked but not imported
    (``detectors`` then leaves them out): a plugin is code (``detectors.plugins``)."""
    doc, lines = _compose(text, source)
    c = _Checker(source, lines)
    doc = c.mapping(doc, (), "the rules file")
    c.keys(doc, _TOP, (), "the rules file")

    engine = c.mapping(doc.get("engine"), ("engine",), "engine")
    c.keys(engine, _ENGINE, ("engine",), "engine")
    timing = {k: c.duration(v, ("engine", k)) for k, v in engine.items()}

    metrics = c.mapping(doc.get("metrics"), ("metrics",), "metrics")
    c.keys(metrics, {"site_labels", "feeds"}, ("metrics",), "metrics")
    try:
        feeds = parse_feeds(metrics.get("feeds"))
    except ConfigError as exc:
        raise c.fail(("metrics", "feeds"), str(exc)) from None
    sites = metrics.get("site_labels") or []
    if not isinstance(sites, list) or not all(isinstance(s, str) and s for s in sites):
        raise c.fail(("metrics", "site_labels"), "site_labels must be a list of site codes")

    dets_conf = c.mapping(doc.get("detectors"), ("detectors",), "detectors")
    detectors: list[Detector] = []
    disabled: list[str] = []
    for name in dets_conf:
        if name not in BUILTINS:
            raise c.fail(
                ("detectors", name), f"unknown detector {name!r}; built-ins are {sorted(BUILTINS)}"
            )
    for name, cls in BUILTINS.items():
        path: Path_ = ("detectors", name)
        raw = dets_conf.get(name)
        if raw is False or raw == "off":  # YAML 1.1 reads a bare `off` as false
            disabled.append(name)
            continue
        conf = c.mapping(None if raw is True or raw == "on" else raw, path, f"detector {name}")
        defaults: dict[str, float] = getattr(cls, "DEFAULTS", {})
        switches = _SWITCHES.get(name, ())
        allowed = {"enabled", *defaults, *switches, *(["overrides"] if defaults else [])}
        c.keys(conf, allowed, path, f"detector {name}")
        for k in ("enabled", *switches):
            if k in conf and not isinstance(conf[k], bool):
                raise c.fail((*path, k), f"{k} must be true or false")
        if not conf.get("enabled", True):
            disabled.append(name)
            continue
        options = {k: conf[k] for k in switches if k in conf}
        if defaults:
            detectors.append(cls(c.thresholds(conf, defaults, path, name), **options))
        else:
            detectors.append(cls(**options))

    rules = doc.get("rules") or []
    if not isinstance(rules, list):
        raise c.fail(("rules",), "rules must be a list of rules (each starting with '- name:')")
    names = {d.name for d in detectors} | set(disabled)
    for i, rule in enumerate(rules):
        path = ("rules", i)
        rule = c.mapping(rule, path, "a rule")
        c.keys(rule, _RULE, path, "a rule")
        for req in ("name", "key", "when", "expect", "within"):
            if req not in rule:
                raise c.fail(path, f"a rule needs '{req}'")
        name = rule["name"]
        if not isinstance(name, str) or not name:
            raise c.fail((*path, "name"), "a rule's name must be a non-empty string")
        if name in names:
            raise c.fail((*path, "name"), f"the name {name!r} is already used")
        names.add(name)
        key = rule["key"]
        if not isinstance(key, str) or not key:
            raise c.fail((*path, "key"), "key must name a ref, e.g. encounter or order")
        within = {"within": c.duration(rule["within"], (*path, "within"))}
        thresholds = c.thresholds(
            {k: v for k, v in rule.items() if k == "overrides"}, within, path, name
        )
        detectors.append(
            RuleDetector(
                name=name,
                key=key,
                when=c.patterns(rule["when"], (*path, "when"), "when"),
                expect=c.patterns(rule["expect"], (*path, "expect"), "expect"),
                void_on=(
                    c.patterns(rule["void_on"], (*path, "void_on"), "void_on")
                    if rule.get("void_on")
                    else []
                ),
                thresholds=thresholds,
                opened_words=str(rule.get("opened") or f"{name}: {{{key}}} opened"),
                expected_words=str(rule.get("expected") or "the expected event"),
            )
        )
    plugins = doc.get("plugins") or []
    if not isinstance(plugins, list):
        raise c.fail(("plugins",), "plugins must be a list of 'package.module:ClassName'")
    for i, spec in enumerate(plugins):
        det = _load_plugin(spec, c, ("plugins", i), import_plugins)
        if det is None:
            continue
        if det.name in names:
            raise c.fail(("plugins", i), f"the name {det.name!r} is already used")
        names.add(det.name)
        detectors.append(det)
    return Settings(
        detectors=tuple(detectors),
        allowed_lateness=timing.get("allowed_lateness", 600.0),
        late_retention=timing.get("late_retention", 30 * 86400.0),
        dedupe_window=timing.get("dedupe_window", 7 * 86400.0),
        correction_horizon=timing.get("correction_horizon", 30 * 86400.0),
        site_labels=tuple(sites),
        feeds=feeds,
        source=source,
        disabled=tuple(disabled),
        plugins=tuple(plugins),
    )


def _load_plugin(spec: Any, c: _Checker, path: Path_, import_plugins: bool) -> Detector | None:
    """Import ``package.module:ClassName`` and build the detector with no arguments
    (only find and check the module when not ``import_plugins``)."""
    import importlib

    from detectors.plugins import PluginRefused, locate_plugin, split_plugin

    try:
        module_name, class_name = split_plugin(spec)
        locate_plugin(module_name)
    except PluginRefused as exc:
        raise c.fail(path, f"cannot load plugin {spec!r}: {exc}") from None
    if not import_plugins:
        return None
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise c.fail(path, f"cannot load plugin {spec!r}: {exc}") from None
    det = cls() if isinstance(cls, type) else None
    if not isinstance(det, Detector) or not det.name:
        raise c.fail(
            path,
            f"{spec!r} is not a detector class (subclass ExpectationDetector "
            "or ViolationDetector and set a name)",
        )
    return det


def load_settings(path: str | Path | None, *, import_plugins: bool = True) -> Settings:
    """Settings from a rules file, or the built-in defaults when ``path`` is ``None``
    (``import_plugins``: see ``parse_settings``)."""
    if path is None:
        return parse_settings("", "(built-in defaults)")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read rules file {p}: {exc.strerror}") from None
    return parse_settings(text, str(p), import_plugins=import_plugins)
