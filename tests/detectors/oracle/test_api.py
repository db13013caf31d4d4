"""The oracle's frame and public calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tests.oracle as oracle
from detectors.builtin import ResultOverdue
from detectors.errors import ConfigError
from detectors.events import REF_KINDS
from detectors.rules import Settings, parse_settings
from detectors.testing import ev
from tests.detectors.helpers import at, epoch
from tests.oracle import build_frame, detect, load, plan_for, run_oracle
from tests.oracle.clock import Clock
from tests.oracle.frame import BASE_ATTRS, epoch_of, is_true


def test_public_api() -> None:
    assert sorted(oracle.__all__) == [
        "EventFrame",
        "OracleResult",
        "build_frame",
        "detect",
        "load",
        "plan_for",
        "run_oracle",
    ]


def test_the_frame_holds_the_contract_columns_and_drops_repeated_ids() -> None:
    events = [
        ev("order.placed", at(1), refs={"order": "O1"}, attrs={"priority": "stat"}, id="e1"),
        ev("order.placed", at(2), refs={"order": "O9"}, attrs={"priority": "urgent"}, id="e1"),
        ev("result.reported", at(3), refs={"order": "O1"}, attrs={"critical": True}, id="e2"),
    ]
    frame = load(events)
    table = frame.table
    assert {"id", "type", "time", "patient"} <= set(table.columns)
    assert {f"refs.{k}" for k in REF_KINDS} <= set(table.columns)
    assert {f"attrs.{a}" for a in BASE_ATTRS} <= set(table.columns)
    assert (frame.received, frame.duplicates, len(table)) == (3, 1, 2)
    assert table["id"].tolist() == ["e1", "e2"]
    assert table["attrs.priority"].tolist() == ["stat", None]  # the first copy won
    assert table["time"].tolist() == [epoch(1), epoch(3)]
    assert frame.events[0] is events[0]


def test_columns_are_filled_for_the_types_the_plan_names() -> None:
    events = [ev("order.placed", at(0), refs={"order": "O1"}, attrs={"test": "FBC"})]
    plan = {"attrs.test": frozenset({"result.reported"}), "refs.referral": frozenset()}
    table = build_frame(events, plan).table
    assert table["attrs.test"].tolist() == [None]  # not asked for order.placed
    assert "refs.referral" in table.columns


def test_times_and_flags_are_read_as_the_detectors_read_them() -> None:
    starts = pd.Series([at(0), "", None, 5, "2026-03-02T09:00:00", "soon", at(1)], dtype=object)
    got = epoch_of(starts)
    assert got[0] == epoch(0) and got[6] == epoch(1)
    assert np.isnan(got[1:6]).all()
    flags = pd.Series([True, 1, "true", None, False], dtype=object)
    assert is_true(flags).tolist() == [True, False, False, False, False]


def test_the_watermark_never_moves_back() -> None:
    times = np.array([0.0, 1000.0])
    assert Clock.of(times, 600.0, None).watermark == 400.0
    assert Clock.of(times, 600.0, 100.0).watermark == 400.0  # as the engine's advance_to
    assert Clock.of(times, 600.0, 5000.0).watermark == 5000.0
    assert Clock.of(np.array([]), 600.0, None).watermark == float("-inf")
    clock = Clock.of(times, 600.0, 5000.0)
    assert clock.detected_at(np.array([-700.0, 0.0, 400.0, 401.0])).tolist() == [
        -600.0,
        400.0,
        400.0,
        5000.0,
    ]


def test_run_oracle_gives_the_decided_records() -> None:
    events = [
        ev("order.placed", at(0), refs={"order": "O1"}, attrs={"priority": "stat"}),
        ev("order.placed", at(0), refs={"order": "O2"}, attrs={"priority": "routine"}),
    ]
    got = run_oracle(events, None, epoch(2))
    assert [(o.key, o.outcome) for o in got] == [("O1", "missed")]
    assert [o.key for o in detect(load(events), None, epoch(2)).open] == ["O2"]


def test_an_unknown_detector_or_a_frame_for_other_settings_is_refused() -> None:
    class Tweaked(ResultOverdue):
        pass

    with pytest.raises(ConfigError, match="no column form"):
        plan_for(Settings(detectors=(Tweaked(),)))
    rules = (
        "rules:\n  - {name: r, key: x, when: a.b, expect: {type: c.d, attrs: {k: v}}, within: 1h}"
    )
    with pytest.raises(ValueError, match="other settings"):
        detect(load([]), parse_settings(rules), float(epoch(0)))
    assert run_oracle([], parse_settings(rules), epoch(0)) == []
    assert detect(load([], parse_settings(rules)), parse_settings(rules), epoch(0)).outcomes == []
