"""deploy/prometheus: the rules load, every alert is complete and has a runbook, and
``promtool test rules`` shows each alert firing when it should and quiet when not."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.tools import PROMETHEUS_DIR, RUNBOOKS, run, tool

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
RUNBOOK_BASE = "{{ with $externalLabels.runbook_base }}{{ . }}{{ else }}docs/runbooks{{ end }}"


def alerts() -> list[dict[str, Any]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [r for r in group["rules"] if "alert" in r]
    return out


def test_the_rules_load() -> None:
    assert RULE_FILES
    proc = run(tool("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_says_how_bad_what_and_what_to_do() -> None:
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    for a in alerts():
        assert a["labels"]["severity"] in {"page", "warning", "info"}, a["alert"]
        notes = a["annotations"]
        assert notes["summary"] and notes["description"], a["alert"]
        # the site's published runbooks (external label runbook_base), else the path here
        url = notes["runbook_url"]
        assert url.startswith(RUNBOOK_BASE + "/"), url
        runbook = RUNBOOKS / url.removeprefix(RUNBOOK_BASE + "/")
        assert runbook.parent == RUNBOOKS and runbook.is_file(), url
        text = runbook.read_text()
        assert a["alert"] in text.splitlines()[0], f"{runbook.name} is not about {a['alert']}"
        assert "**What to do" in text, f"{runbook.name} does not say what to do"


def test_promtool_unit_tests_pass() -> None:
    assert TEST_FILES
    proc = run(tool("promtool"), "test", "rules", *map(str, TEST_FILES), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (fired if t.get("exp_alerts") else quiet).add(t["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"
