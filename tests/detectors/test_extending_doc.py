"""The Python detector in docs/extending.md works as written, alone and as a plugin."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from detectors.rules import parse_settings
from detectors.testing import ev, run_events

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def test_the_documented_detector_its_test_and_its_rules_work_as_copied(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # the files a reader makes from the page, each under the name its first line gives
    for block in blocks("python")[:2]:
        name = block.splitlines()[0].removeprefix("# ")
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(block)
    (tmp_path / "my_trust" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.path.insert(0, str(tmp_path / "tests"))
    made = ("my_trust", "my_trust.dna_letter", "test_dna_letter")
    try:
        import test_dna_letter  # type: ignore[import-not-found]

        test_dna_letter.test_dna_letter()
        settings = parse_settings(blocks("yaml")[0])
        assert settings.detectors[-1].name == "dna-letter"
        dna = ev("appointment.missed", "2026-03-02T09:00:00+00:00", refs={"appointment": "A1"})
        out = run_events([dna], rules=settings, as_of="2026-04-01T00:00:00+00:00")
        assert out.outcome_of("dna-letter", "A1") == "missed"
    finally:
        sys.path.remove(str(tmp_path / "tests"))
        for name in made:  # no later test may find these modules already imported
            sys.modules.pop(name, None)


def test_a_bad_plugin_is_a_clear_error() -> None:
    import pytest

    from detectors.errors import RulesError

    with pytest.raises(RulesError, match="cannot load plugin"):
        parse_settings("plugins:\n  - no_such_module:Nope\n", "r.yaml")
    with pytest.raises(RulesError, match="not a detector class"):
        parse_settings("plugins:\n  - pathlib:Path\n", "r.yaml")


def test_a_plugin_with_lists_and_sets_where_the_contract_shows_tuples_runs() -> None:
    # A hospital's detector written loosely: the type lists are lists and ``reads`` is a
    # set. Compiled, the contract checks the types it declares, so it declares the loose
    # ones (tests/run runs this on both builds).
    from detectors.contract import Context, ExpectationDetector, ViolationDetector
    from detectors.events import Event

    class LetterAfterDna(ExpectationDetector):
        name = "letter-after-dna"
        key_ref = "appointment"
        opens = ["appointment.missed"]  # noqa: RUF012  (a list on purpose)
        closes = ["patient.notified"]  # noqa: RUF012

        def deadline(self, event: Event) -> float | None:
            return event.time + 86400.0

    class NoticeCounter(ViolationDetector):
        name = "notice-counter"

        def __init__(self) -> None:
            self.seen = 0

        @property
        def reads(self) -> set[str]:
            return {"patient.notified"}

        def on_event(self, event: Event, ctx: Context) -> None:
            self.seen += 1

        def snapshot(self) -> dict[str, int]:
            return {"seen": self.seen}

        def restore(self, state: Any) -> None:
            self.seen = state["seen"]

    dna = ev("appointment.missed", "2026-03-02T09:00:00+00:00", refs={"appointment": "A1"})
    told = ev("patient.notified", "2026-03-02T15:00:00+00:00", refs={"appointment": "A1"})
    out = run_events(
        [dna, told],
        detectors=[LetterAfterDna(), NoticeCounter()],
        as_of="2026-03-05T00:00:00+00:00",
    )
    assert out.outcome_of("letter-after-dna", "A1") == "met"
    assert out.engine.detectors[1].seen == 1  # type: ignore[attr-defined]
