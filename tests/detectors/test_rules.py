from __future__ import annotations

import pytest

from detectors.errors import RulesError
from detectors.rules import RuleDetector, load_settings, parse_settings
from detectors.testing import ev, run_events
from tests.detectors.helpers import FAR, at, epoch

SEPSIS = """
engine:
  allowed_lateness: 5m
detectors:
  clinic-overbooked: off
  contact-after-death:
    enabled: false
rules:
  - name: sepsis-antibiotics
    key: encounter
    when: {type: triage.completed, attrs: {sepsis_suspected: true}}
    expect: {type: medication.given, attrs: {class: antibiotic}}
    within: 1h
    void_on: [encounter.discharged]
    overrides:
      - when: {site: north}
        within: 45m
    opened: "Sepsis suspected at triage in encounter {encounter}"
    expected: "antibiotics"
"""


def test_defaults_have_every_builtin_on() -> None:
    s = parse_settings("")
    assert [d.name for d in s.detectors] == [
        "reschedule-notice",
        "result-overdue",
        "result-unacknowledged",
        "discharge-summary-overdue",
        "clinic-letter-overdue",
        "clinic-overbooked",
        "contact-after-death",
    ]
    assert (s.allowed_lateness, s.late_retention) == (600.0, 30 * 86400.0)


def test_custom_rule_switches_and_engine_settings() -> None:
    s = parse_settings(SEPSIS)
    names = [d.name for d in s.detectors]
    assert "clinic-overbooked" not in names and "contact-after-death" not in names
    assert s.disabled == ("clinic-overbooked", "contact-after-death")
    assert s.allowed_lateness == 300.0
    rule = s.detectors[-1]
    assert isinstance(rule, RuleDetector) and rule.name == "sepsis-antibiotics"


def test_custom_rule_runs_like_a_builtin() -> None:
    def triage(enc: str, site: str, suspected: bool = True) -> object:
        return ev(
            "triage.completed",
            at(0),
            refs={"encounter": enc},
            attrs={"sepsis_suspected": suspected, "site": site},
        )

    def abx(enc: str, hours: float, cls: str = "antibiotic") -> object:
        return ev("medication.given", at(hours), refs={"encounter": enc}, attrs={"class": cls})

    events = [
        triage("E1", "south"),
        abx("E1", 0.9),  # met (1h)
        triage("E2", "north"),
        abx("E2", 0.9),  # late (45m at north)
        triage("E3", "south"),
        abx("E3", 0.5, "fluids"),  # missed: not an antibiotic
        triage("E4", "south", suspected=False),  # not an opportunity
        triage("E5", "south"),
        ev("encounter.discharged", at(0.5), refs={"encounter": "E5"}),  # void
    ]
    out = run_events(events, rules=SEPSIS, as_of=FAR)
    got = {o.key: o.outcome for o in out.by_detector("sepsis-antibiotics")}
    assert got == {"E1": "met", "E2": "late", "E3": "missed", "E5": "void"}
    e3 = next(o for o in out.by_detector("sepsis-antibiotics") if o.key == "E3")
    assert e3.due_at == epoch(1)
    assert e3.summary.startswith("Sepsis suspected at triage in encounter E3")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("detectors:\n  result-overdue:\n    stat: soon\n", 3, "not a duration"),
        ("detectors:\n  discharge-summary-overdue:\n    within: 24\n", 3, "has no unit"),
        ("detectors:\n  result-overdoo: off\n", 2, "unknown detector 'result-overdoo'"),
        ("engine:\n  lateness: 5m\n", 2, "unknown key 'lateness'"),
        ("detectors:\n  result-overdue:\n    statt: 1h\n", 3, "unknown key 'statt'"),
        ("rules:\n  - name: x\n    key: order\n    when: a\n    expect: b\n", 2, "needs 'within'"),
        (
            "rules:\n  - name: result-overdue\n    key: o\n    when: a\n    expect: b\n    within: 1h\n",
            2,
            "already used",
        ),
        (
            "rules:\n  - name: x\n    key: o\n    when: [3]\n    expect: b\n    within: 1h\n",
            4,
            "event type",
        ),
        ("detectors:\n  result-overdue:\n    overrides:\n      - stat: 1h\n", 4, "needs 'when"),
        ("detectors: [1, 2\n", 2, "not valid YAML"),
        ("a: 1\na: 2\n", 2, "given twice"),
    ],
)
def test_errors_point_at_the_offending_line(text: str, line: int, words: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_settings(text, "site.yaml")
    assert info.value.line == line, str(info.value)
    assert words in str(info.value)
    assert str(info.value).startswith(f"site.yaml:{line}: ")


def test_missing_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from detectors.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot read rules file"):
        load_settings(tmp_path / "nope.yaml")


def test_the_engine_table_of_the_docs_is_the_table_of_defaults() -> None:
    import re
    from pathlib import Path

    from detectors.durations import format_duration
    from detectors.rules import ENGINE_DEFAULTS, Settings

    doc = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    rows = dict(
        (m[1], (m[2], m[3], m[4]))
        for m in re.finditer(r"^\| `(\w+)` \| `(\w+)` \| `(\w+)` to `(\w+)` \|", doc, re.M)
    )
    assert set(rows) == set(ENGINE_DEFAULTS)
    for name, spec in ENGINE_DEFAULTS.items():
        assert rows[name] == tuple(map(format_duration, (spec.default, spec.low, spec.high)))
        assert getattr(Settings(detectors=()), name) == spec.default
        assert getattr(parse_settings(""), name) == spec.default


def test_an_engine_built_without_settings_has_the_same_defaults() -> None:
    # Engine's own keyword defaults (detectors/engine.py) must agree with the one table
    from detectors.engine import Engine
    from detectors.rules import ENGINE_DEFAULTS

    engine = Engine([])
    assert engine.allowed_lateness == ENGINE_DEFAULTS["allowed_lateness"].default
    assert engine.late_retention == ENGINE_DEFAULTS["late_retention"].default
    assert engine.dedupe_window == ENGINE_DEFAULTS["dedupe_window"].default
    assert engine.horizon == ENGINE_DEFAULTS["correction_horizon"].default
