"""Outcome records: the JSON form written to files equals the dict form."""

from __future__ import annotations

import orjson
import pytest

from detectors.records import Outcome, failure_id


@pytest.mark.parametrize("closed", [None, 1772445600.0, 1772445600.25])
def test_json_lines_equal_the_dict_form(closed: float | None) -> None:
    o = Outcome(
        failure_id("d", "k", "e"),
        "d",
        "late",
        "k",
        "P1",
        {"order": "k"},
        1772442000.0,
        1772445000.0,
        closed,
        1772446000.5,
        ["e"],
        {"site": "north"},
        "words",
        amended_from="missed",
    )
    assert orjson.loads(o.outcome_json()) == o.to_outcome_dict()
    assert orjson.loads(o.failure_json()) == o.to_failure_dict()
    assert o.to_outcome_dict()["opened_at"] == "2026-03-02T09:00:00+00:00"


def test_failure_id_is_stable() -> None:
    # the generator's truth and any consumer rely on this exact derivation
    assert failure_id("result-overdue", "O1", "e1") == failure_id("result-overdue", "O1", "e1")
    assert len(failure_id("a", "b", "c")) == 16
    assert failure_id("a", "b", "c") != failure_id("a", "bc", "")
