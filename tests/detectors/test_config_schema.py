"""``carewatch rules schema``: JSON Schemas an editor can check the configuration files
with. They accept the shipped files and refuse broken ones."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from detectors.config_reader import read_yaml
from detectors.rules import rules_schema
from streams.adapters.mapping import mapping_schema
from streams.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _errors(schema: dict[str, object], text: str) -> list[str]:
    data = read_yaml(text, "f.yaml").core()  # as an editor (YAML 1.2) reads it
    validator = jsonschema.Draft202012Validator(schema)
    return [e.message for e in validator.iter_errors(data)]


def test_the_schemas_are_valid_json_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    for schema in (rules_schema(), mapping_schema()):
        jsonschema.Draft202012Validator.check_schema(schema)
    assert main(["rules", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == rules_schema()
    assert main(["rules", "schema", "--mapping"]) == 0
    assert json.loads(capsys.readouterr().out) == mapping_schema()


@pytest.mark.parametrize("path", ["docs/rules.example.yaml"])
def test_the_rules_schema_accepts_the_shipped_files(path: str) -> None:
    assert _errors(rules_schema(), (ROOT / path).read_text()) == []
    assert _errors(rules_schema(), "") == []


@pytest.mark.parametrize(
    "path", ["streams/adapters/default_mapping.yaml", "docs/site-mapping.example.yaml"]
)
def test_the_mapping_schema_accepts_the_shipped_files(path: str) -> None:
    assert _errors(mapping_schema(), (ROOT / path).read_text()) == []


@pytest.mark.parametrize(
    "text",
    [
        "engine:\n  lateness: 5m\n",
        "engine:\n  allowed_lateness: 24\n",
        "detectors:\n  result-overdoo: off\n",
        "detectors:\n  result-overdue:\n    statt: 1h\n",
        "detectors:\n  result-overdue:\n    overrides:\n      - stat: 1h\n",
        "rules:\n  - name: x\n    key: order\n    when: a\n    expect: b\n",
        "plugins: [not a plugin]\n",
    ],
)
def test_the_rules_schema_refuses_a_broken_file(text: str) -> None:
    assert _errors(rules_schema(), text)


@pytest.mark.parametrize(
    "text",
    [
        "codes:\n  document_kinds:\n    discharge-summary: 5\n",
        "codez: {}\n",
        "date_only: noon\n",
        "hl7v2:\n  patient_id:\n    fallback_to_first: maybe\n",
        "codes:\n  notice_documents:\n    APL: pigeon\n",
    ],
)
def test_the_mapping_schema_refuses_a_broken_file(text: str) -> None:
    assert _errors(mapping_schema(), text)
