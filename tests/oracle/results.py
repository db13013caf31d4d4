"""``result-overdue`` and ``result-unacknowledged`` over columns: an order needs its result
within the turnaround for its priority, and a critical or abnormal result needs an
acknowledgement."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd

from detectors.builtin import ResultOverdue, ResultUnacknowledged
from detectors.contract import ExpectationDetector
from tests.oracle.expectations import ExpectationForm, Sides, events_of, of_types, openers
from tests.oracle.frame import ColumnPlan, is_true
from tests.oracle.match import attr_equals, per_row, when_keys

__all__ = ["RESULT_OVERDUE", "RESULT_UNACKNOWLEDGED"]


def _all_rows(rows: pd.DataFrame) -> np.ndarray:
    return np.ones(len(rows), dtype=bool)


def _overdue_needs(det: ExpectationDetector) -> ColumnPlan:
    d = cast(ResultOverdue, det)
    opens = frozenset(d.opens)
    return {
        "refs.order": opens | frozenset(d.closes) | frozenset(d.voids),
        **{f"attrs.{name}": opens for name in {"priority"} | when_keys(d.thresholds)},
    }


def _overdue_sides(det: ExpectationDetector, table: pd.DataFrame) -> Sides:
    d = cast(ResultOverdue, det)
    columns = list(_overdue_needs(det))
    rows = of_types(table, d.opens, *columns)
    values = per_row(d.thresholds, rows)
    turnaround = values["routine"].copy()  # an unknown priority is routine
    for priority, seconds in values.items():
        turnaround = np.where(attr_equals(rows, "priority", priority), seconds, turnaround)
    closing = of_types(table, d.closes, *columns)
    voiding = of_types(table, d.voids, *columns)
    return Sides(
        openers(rows, "refs.order", rows["time"].to_numpy() + turnaround),
        events_of(closing, _all_rows(closing), "refs.order"),
        events_of(voiding, _all_rows(voiding), "refs.order"),
    )


def _unacknowledged_needs(det: ExpectationDetector) -> ColumnPlan:
    d = cast(ResultUnacknowledged, det)
    opens = frozenset(d.opens)
    attrs = {"critical", "abnormal"} | when_keys(d.thresholds)
    return {
        "refs.order": opens | frozenset(d.closes),
        **{f"attrs.{name}": opens for name in attrs},
    }


def _unacknowledged_sides(det: ExpectationDetector, table: pd.DataFrame) -> Sides:
    d = cast(ResultUnacknowledged, det)
    columns = list(_unacknowledged_needs(det))
    rows = of_types(table, d.opens, *columns)
    values = per_row(d.thresholds, rows)
    critical = is_true(rows["attrs.critical"])
    abnormal = is_true(rows["attrs.abnormal"])
    within = np.select([critical, abnormal], [values["critical"], values["abnormal"]], np.nan)
    closing = of_types(table, d.closes, *columns)
    return Sides(
        openers(rows, "refs.order", rows["time"].to_numpy() + within),
        events_of(closing, _all_rows(closing), "refs.order"),
        events_of(closing, np.zeros(len(closing), dtype=bool), "refs.order"),
    )


#: How the oracle reads ``result-overdue``.
RESULT_OVERDUE = ExpectationForm(_overdue_needs, _overdue_sides)
#: How the oracle reads ``result-unacknowledged``.
RESULT_UNACKNOWLEDGED = ExpectationForm(_unacknowledged_needs, _unacknowledged_sides)
