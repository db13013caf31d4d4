"""Custom YAML rules (``RuleDetector``) over columns: when an event matches a ``when``
pattern, an event matching an ``expect`` pattern with the same ref must follow within
``within``; one matching ``void_on`` voids it."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd

from detectors.contract import ExpectationDetector
from detectors.rules import EventPattern, RuleDetector
from tests.oracle.expectations import ExpectationForm, Sides, events_of, of_types, openers
from tests.oracle.frame import ColumnPlan, merge_plans
from tests.oracle.match import pattern_mask, per_row, when_keys

__all__ = ["RULE"]


def _pattern_plan(patterns: tuple[EventPattern, ...]) -> ColumnPlan:
    return merge_plans(*({f"attrs.{k}": frozenset({p.type}) for k in p.attrs} for p in patterns))


def _needs(det: ExpectationDetector) -> ColumnPlan:
    d = cast(RuleDetector, det)
    opens = frozenset(d.opens)
    return merge_plans(
        {f"refs.{d.key_ref}": opens | frozenset(d.closes) | frozenset(d.voids)},
        {f"attrs.{name}": opens for name in when_keys(d.thresholds)},
        _pattern_plan(d.when),
        _pattern_plan(d.expect),
        _pattern_plan(d.void_on),
    )


def _sides(det: ExpectationDetector, table: pd.DataFrame) -> Sides:
    d = cast(RuleDetector, det)
    columns = list(_needs(det))
    key = f"refs.{d.key_ref}"
    rows = of_types(table, d.opens, *columns)
    due = rows["time"].to_numpy() + per_row(d.thresholds, rows)["within"]
    due[~pattern_mask(rows, d.when)] = np.nan
    closing = of_types(table, d.closes, *columns)
    voiding = of_types(table, d.voids, *columns)
    return Sides(
        openers(rows, key, due),
        events_of(closing, pattern_mask(closing, d.expect), key),
        events_of(voiding, pattern_mask(voiding, d.void_on), key),
    )


#: How the oracle reads a custom rule.
RULE = ExpectationForm(_needs, _sides)
