"""The one configuration reader: values as written, misspellings and hostile files
refused, every problem of a file reported with its line. The rules file, the site
mapping and the Kafka settings file all go through it."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import pytest

from detectors.config_reader import MAX_BYTES, ConfigProblems, read_yaml
from detectors.errors import ConfigError, RulesError
from detectors.rules import RuleDetector, parse_settings
from detectors.testing import ev, run_events
from streams.adapters import mapping_from_text
from streams.cli import main
from streams.kafka.config import load_config
from tests.detectors.helpers import FAR, at

#: Plain scalars YAML 1.1 reads as something else than the text written: booleans
#: (NO, on, off, yes, y), an octal-looking number (010 is 8) and a sexagesimal one
#: (1:30 is 90).
YAML11_SPELLINGS = ["NO", "no", "on", "off", "yes", "y", "Y", "010", "0123", "1:30", "0x1F"]

#: The 342-byte "billion laughs": nine aliases of nine aliases... 9^9 strings expanded.
_LOL = ",".join(['"lol"'] * 9)
ALIAS_BOMB = "".join(
    f"{name}: &{name} [{','.join([f'*{prev}'] * 9) if prev else _LOL}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def test_read_yaml_keeps_the_text_written() -> None:
    node = read_yaml("a: [NO, 010, 1:30, '~', ~, true]\n", "f.yaml")
    assert node.plain() == {"a": ["NO", "010", "1:30", "~", None, "true"]}
    assert node.get("a") is not None and node.get("a").line == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("spelling", YAML11_SPELLINGS)
def test_a_when_value_is_the_text_written(spelling: str) -> None:
    rules = (
        "detectors:\n  result-overdue:\n    overrides:\n"
        f"      - when: {{test: {spelling}}}\n        stat: 30m\n"
    )
    settings = parse_settings(rules, "site.yaml")
    det = next(d for d in settings.detectors if d.name == "result-overdue")
    assert det.thresholds.overrides == [({"test": spelling}, {"stat": 1800.0})]
    # and the override really applies to an order for that test
    out = run_events(
        [
            ev(
                "order.placed",
                at(0),
                refs={"order": "O1"},
                attrs={"priority": "stat", "test": spelling},
            ),
            ev("result.reported", at(0.75), refs={"order": "O1"}),
        ],
        rules=settings,
        as_of=FAR,
    )
    assert out.outcome_of("result-overdue", "O1") == "late"  # 45 min > 30 min


@pytest.mark.parametrize("spelling", YAML11_SPELLINGS)
def test_a_rule_pattern_value_is_the_text_written(spelling: str) -> None:
    rules = (
        "rules:\n  - name: r\n    key: order\n"
        f"    when: {{type: lab.flagged, attrs: {{code: {spelling}}}}}\n"
        "    expect: lab.seen\n    within: 1h\n"
    )
    rule = parse_settings(rules).detectors[-1]
    assert isinstance(rule, RuleDetector)
    assert rule.when[0].attrs == {"code": spelling}


def test_typed_attrs_and_plain_true_false_keep_their_types() -> None:
    rules = (
        "detectors:\n  result-unacknowledged:\n    overrides:\n"
        "      - when: {critical: true, test: 'true'}\n        critical: 30m\n"
        "rules:\n  - name: r\n    key: encounter\n"
        "    when: {type: triage.completed, attrs: {sepsis: true, band: 10}}\n"
        "    expect: x.y\n    within: 1h\n"
    )
    s = parse_settings(rules)
    det = next(d for d in s.detectors if d.name == "result-unacknowledged")
    assert det.thresholds.overrides[0][0] == {"critical": True, "test": "true"}
    rule = s.detectors[-1]
    assert isinstance(rule, RuleDetector)
    assert rule.when[0].attrs == {"sepsis": True, "band": "10"}


@pytest.mark.parametrize("spelling", ["yes", "on", "1", "y"])
def test_a_typed_boolean_attr_takes_only_true_or_false(spelling: str) -> None:
    rules = (
        "detectors:\n  result-unacknowledged:\n    overrides:\n"
        f"      - when: {{critical: {spelling}}}\n        critical: 30m\n"
    )
    with pytest.raises(RulesError, match=r"site.yaml:4: attrs.critical must be true or false"):
        parse_settings(rules, "site.yaml")


@pytest.mark.parametrize("spelling", YAML11_SPELLINGS)
def test_mapping_codes_are_the_text_written(spelling: str) -> None:
    mapping = mapping_from_text(f"codes:\n  normal_flags: [{spelling}]\n")
    assert mapping.codes.normal_flags == frozenset({spelling.upper()})
    mapping = mapping_from_text(f"codes:\n  priority:\n    stat: [{spelling}]\n")
    assert mapping.codes.priority_of(spelling) == "stat"


@pytest.mark.parametrize("spelling", ["yes", "on", "y", "1", "NO"])
def test_mapping_switches_take_only_true_or_false(spelling: str) -> None:
    with pytest.raises(RulesError, match="must be true or false"):
        mapping_from_text(f"codes:\n  emit_unmapped_documents: {spelling}\n", "site.yaml")


@pytest.mark.parametrize("spelling", YAML11_SPELLINGS)
def test_kafka_settings_are_the_text_written(tmp_path: Path, spelling: str) -> None:
    f = tmp_path / "kafka.yaml"
    f.write_text(
        f"group_id: {spelling}\nkafka_sasl_username: {spelling}\nkafka_sasl_password: {spelling}\n"
        "kafka_security_protocol: SASL_PLAINTEXT\nkafka_sasl_mechanism: PLAIN\n"
        "partitions: 3\n"
    )
    c = load_config(str(f), env={})
    assert (c.group_id, c.sasl_username, c.sasl_password) == (spelling, spelling, spelling)
    assert c.partitions == 3


def test_kafka_numbers_are_decimal_and_in_range(tmp_path: Path) -> None:
    f = tmp_path / "kafka.yaml"
    f.write_text(
        "partitions: 010\nreplication_factor: 0x2\ntick_interval: 800000d\nmetrics_port: 70000\n"
    )
    with pytest.raises(ConfigProblems) as caught:
        load_config(str(f), env={})
    message = str(caught.value)
    assert f"{f}:2: replication_factor must be a whole number" in message
    assert f"{f}:3: tick_interval" in message
    assert f"{f}:4: metrics_port must be from 0 to 65535" in message
    assert len(caught.value.problems) == 3  # 010 is ten, written in decimal with a zero


# ------------------------------------------------------------------ misspelt when: attrs


def test_a_misspelt_when_attr_is_refused_with_a_hint() -> None:
    rules = "detectors:\n  result-overdue:\n    overrides:\n      - when: {tset: TROP}\n        stat: 30m\n"
    with pytest.raises(RulesError) as caught:
        parse_settings(rules, "site.yaml")
    message = str(caught.value)
    assert message.startswith("site.yaml:4: ")
    assert "attrs.tset" in message and "did you mean 'test'?" in message


def test_a_rule_may_declare_the_attrs_its_opening_events_carry() -> None:
    base = (
        "rules:\n  - name: r\n    key: encounter\n    when: triage.completed\n"
        "    expect: medication.given\n    within: 1h\n"
        "    overrides:\n      - when: {ward: 5A}\n        within: 30m\n"
    )
    with pytest.raises(RulesError, match=r"site.yaml:8: .*attrs.ward"):
        parse_settings(base, "site.yaml")
    declared = base + "    opening_attrs: [ward]\n"
    rule = parse_settings(declared).detectors[-1]
    assert isinstance(rule, RuleDetector)
    assert rule.thresholds.overrides == [({"ward": "5A"}, {"within": 1800.0})]
    # attrs a rule's own patterns name are known too, and the carried ones always
    named = base.replace(
        "when: triage.completed", "when: {type: triage.completed, attrs: {ward: 5A}}"
    )
    assert parse_settings(named).detectors[-1].name == "r"
    site = base.replace("{ward: 5A}", "{site: north}")
    assert parse_settings(site).detectors[-1].name == "r"


def test_the_shipped_example_passes() -> None:
    example = Path(__file__).resolve().parents[2] / "docs" / "rules.example.yaml"
    parse_settings(example.read_text(), str(example), import_plugins=False)


# ------------------------------------------------------------------ hostile files


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.parametrize("where", ["rules", "mapping", "kafka"])
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path, where: str) -> None:
    assert len(ALIAS_BOMB) == 342
    before = _peak_rss_kib()
    started = time.process_time()
    with pytest.raises(RulesError, match="aliases are expanded") as caught:
        if where == "rules":
            parse_settings(ALIAS_BOMB, "bomb.yaml")
        elif where == "mapping":
            mapping_from_text(ALIAS_BOMB, "bomb.yaml")
        else:
            f = tmp_path / "bomb.yaml"
            f.write_text(ALIAS_BOMB)
            load_config(str(f), env={})
    assert "bomb.yaml:" in str(caught.value)
    assert _peak_rss_kib() - before < 200 * 1024  # far from the gigabytes it would take
    assert time.process_time() - started < 30  # a generous bound: the work is bounded


def test_too_many_aliases_are_refused() -> None:
    text = "a: &a x\nb: [" + ", ".join(["*a"] * 101) + "]\n"
    with pytest.raises(RulesError, match=r"f.yaml:2: more than 100 aliases"):
        read_yaml(text, "f.yaml")


def test_deep_nesting_and_large_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="nested more than"):
        read_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n", "f.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (MAX_BYTES // 10 + 1))
    assert main(["rules", "check", str(big)]) == 2
    from streams.adapters import load_mapping

    with pytest.raises(RulesError, match="larger than"):
        load_mapping(big)


# ------------------------------------------------------------------ ranges and shapes


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("engine:\n  allowed_lateness: 800000d\n", "allowed_lateness of 800000d is out of range"),
        ("engine:\n  correction_horizon: 400d\n", "from 0s to 366d"),
        ("engine:\n  dedupe_window: 0\n", "dedupe_window of 0 is out of range"),
        ("detectors:\n  result-overdue:\n    stat: 1000d\n", "stat of 1000d is out of range"),
        (
            "rules:\n  - {name: r, key: o, when: a.b, expect: c.d, within: 5000d}\n",
            "within of 5000d is out of range",
        ),
    ],
)
def test_durations_out_of_range_are_refused(text: str, words: str) -> None:
    with pytest.raises(RulesError, match=words):
        parse_settings(text, "site.yaml")


def test_rules_check_and_run_refuse_an_absurd_lateness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("engine:\n  allowed_lateness: 800000d\n")
    assert main(["rules", "check", str(rules)]) == 2
    assert f"{rules}:2: allowed_lateness of 800000d is out of range" in capsys.readouterr().err
    events = tmp_path / "events.jsonl"
    events.write_text("")
    out = tmp_path / "out"
    assert main(["run", str(events), "--rules", str(rules), "--out", str(out), "--quiet"]) == 2
    assert not out.exists()  # never started, so no empty outputs
    assert main(["run", str(events), "--allowed-lateness", "800000d", "--out", str(out)]) == 2
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("codes:\n  document_kinds:\n    discharge-summary: 5\n", 3, "must be a list"),
        ("codes:\n  normal_flags: N\n", 2, "must be a list"),
        ("hl7v2:\n  fields:\n    test: OBR-4.1\n", 3, "must be a list"),
        ("fhir:\n  result_statuses: final\n", 2, "must be a list"),
        ("timezone: [Europe/London]\n", 1, "must be one value"),
    ],
)
def test_mapping_refuses_a_scalar_where_a_list_is_documented(
    text: str, line: int, words: str
) -> None:
    with pytest.raises(RulesError) as caught:
        mapping_from_text(text, "site.yaml")
    assert str(caught.value).startswith(f"site.yaml:{line}: ")
    assert words in str(caught.value)


# ------------------------------------------------------------------ every problem at once


def test_every_problem_of_a_rules_file_is_reported_at_once() -> None:
    text = (
        "engine:\n"
        "  allowed_lateness: soon\n"  # 2
        "  lateness: 5m\n"  # 3
        "detectors:\n"
        "  result-overdoo: off\n"  # 5
        "  result-overdue:\n"
        "    statt: 1h\n"  # 7
        "    overrides:\n"
        "      - when: {tset: TROP}\n"  # 9
        "        stat: 30m\n"
        "rules:\n"
        "  - name: r\n"  # 12: needs 'within'
        "    key: order\n"
        "    when: a.b\n"
        "    expect: c.d\n"
    )
    with pytest.raises(ConfigProblems) as caught:
        parse_settings(text, "site.yaml")
    lines = [line for line, _ in caught.value.problems]
    assert lines == [2, 3, 5, 7, 9, 12]
    message_lines = str(caught.value).splitlines()
    assert len(message_lines) == 6
    assert all(m.startswith(f"site.yaml:{n}: ") for m, n in zip(message_lines, lines, strict=True))
    assert "did you mean 'late_retention'" not in message_lines[1]  # a hint only when close
    assert "did you mean 'result-overdue'?" in message_lines[2]


def test_every_problem_of_a_mapping_is_reported_at_once() -> None:
    text = "timezone: Mars/Olympus\ncodez: {}\ndate_only: noon\nhl7v2:\n  a04_event: x\n"
    with pytest.raises(ConfigProblems) as caught:
        mapping_from_text(text, "site.yaml")
    assert [line for line, _ in caught.value.problems] == [1, 2, 3, 5]


def test_config_problems_is_a_rules_error() -> None:
    assert issubclass(ConfigProblems, RulesError) and issubclass(RulesError, ConfigError)


def test_a_plugin_may_declare_the_attrs_events_carry(tmp_path: Path, monkeypatch: Any) -> None:
    import sys

    (tmp_path / "ward_plugin.py").write_text(
        "from detectors.contract import ViolationDetector\n\n\n"
        "class WardWatch(ViolationDetector):\n"
        "    name = 'ward-watch'\n"
        "    event_attrs = {'order.placed': ['ward']}\n"
        "    reads = ('order.placed',)\n\n"
        "    def on_event(self, event, ctx):\n        pass\n\n"
        "    def snapshot(self):\n        return {}\n\n"
        "    def restore(self, state):\n        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rules = (
        "detectors:\n  result-overdue:\n    overrides:\n"
        "      - when: {ward: 5A}\n        stat: 30m\n"
    )
    try:
        with pytest.raises(RulesError, match=r"attrs\.ward"):
            parse_settings(rules, "site.yaml")
        s = parse_settings(rules + "plugins: ['ward_plugin:WardWatch']\n", "site.yaml")
        det = next(d for d in s.detectors if d.name == "result-overdue")
        assert det.thresholds.overrides == [({"ward": "5A"}, {"stat": 1800.0})]  # type: ignore[attr-defined]
    finally:
        sys.modules.pop("ward_plugin", None)
