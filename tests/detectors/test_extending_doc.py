"""The Python detector in docs/extending.md works as written, alone and as a plugin."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from detectors.rules import parse_settings
from detectors.testing import ev, run_events

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def load_example() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    module = types.ModuleType("my_trust_dna_letter")
    exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)
    return module


def test_the_documented_detector_and_its_test_pass() -> None:
    module = load_example()
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    scope = dict(module.__dict__)
    exec(compile(blocks[1], str(DOC), "exec"), scope)
    scope["test_dna_letter"]()


def test_plugins_load_from_the_rules_file(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    module = load_example()
    monkeypatch.setitem(sys.modules, "my_trust_dna_letter", module)
    settings = parse_settings("plugins:\n  - my_trust_dna_letter:DnaLetter\n")
    assert settings.detectors[-1].name == "dna-letter"
    dna = ev("appointment.missed", "2026-03-02T09:00:00+00:00", refs={"appointment": "A1"})
    out = run_events([dna], rules=settings, as_of="2026-04-01T00:00:00+00:00")
    assert out.outcome_of("dna-letter", "A1") == "missed"


def test_a_bad_plugin_is_a_clear_error() -> None:
    import pytest

    from detectors.errors import RulesError

    with pytest.raises(RulesError, match="cannot load plugin"):
        parse_settings("plugins:\n  - no_such_module:Nope\n", "r.yaml")
    with pytest.raises(RulesError, match="not a detector class"):
        parse_settings("plugins:\n  - pathlib:Path\n", "r.yaml")
