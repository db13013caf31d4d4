"""deploy/alertmanager: the example configuration is valid, routes every case in
deploy/alertmanager/tests/routes.yml to its receivers, and inhibits by names that the
alert rules really use."""

from __future__ import annotations

import yaml

from tests.deploy.test_prometheus_rules import alerts
from tests.deploy.tools import ALERTMANAGER_DIR, run, tool

CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
CASES = yaml.safe_load((ALERTMANAGER_DIR / "tests" / "routes.yml").read_text())


def test_amtool_check_config() -> None:
    proc = run(tool("amtool"), "check-config", str(CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_routing_case() -> None:
    assert len(CASES) >= 8
    failures = []
    for case in CASES:
        labels = [f"{k}={v}" for k, v in case["labels"].items()]
        want = ",".join(case["receivers"])
        proc = run(
            tool("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            f"--verify.receivers={want}",
            *labels,
        )
        if proc.returncode != 0:
            failures.append(f"{labels}: want {want}, got {proc.stdout.strip()}")
    assert not failures, "\n".join(failures)


def test_a_wrong_expectation_is_caught() -> None:
    """The routing check can fail: a page for north does not go to the south team."""
    proc = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "--verify.receivers=south-team",
        "severity=page",
        "site=north",
    )
    assert proc.returncode != 0


def test_inhibitions_name_real_alerts() -> None:
    names = {a["alert"] for a in alerts()}
    config = yaml.safe_load(CONFIG.read_text())
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            name, _, value = matcher.partition("=")
            if name == "alertname":
                assert set(value.lstrip("~").strip('"').split("|")) <= names, matcher
