"""Outcome records: the JSON form written to files equals the dict form."""

from __future__ import annotations

import copy
import pickle

import orjson
import pytest

from detectors.events import Event
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


def test_events_and_outcomes_survive_pickle_and_copy() -> None:
    # QI scripts pickle them and hand them to other processes; the compiled build must
    # allow it as the pure one does (tests/run runs this on both)
    ev = Event("e1", "order.placed", 1772442000.0, "P1", {"order": "O1"}, {"priority": "stat"})
    o = Outcome(
        "f1",
        "result-overdue",
        "missed",
        "O1",
        "P1",
        {"order": "O1"},
        1.0,
        2.0,
        None,
        3.0,
        ["e1"],
        {"site": "north"},
        "Order O1 was placed; its result was due.",
    )
    for thing in (ev, o):
        assert pickle.loads(pickle.dumps(thing)) == thing
        assert copy.copy(thing) == thing
        deep = copy.deepcopy(thing)
        assert deep == thing and deep.attrs is not thing.attrs
