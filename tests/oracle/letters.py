"""``discharge-summary-overdue`` and ``clinic-letter-overdue`` over columns: a document of
one kind must be sent for the encounter or appointment within ``within``."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

from detectors.contract import ExpectationDetector
from tests.oracle.expectations import ExpectationForm, Sides, events_of, of_types, openers
from tests.oracle.frame import ColumnPlan
from tests.oracle.match import attr_equals, per_row, when_keys

__all__ = ["DOCUMENT_AFTER"]


def _needs(det: ExpectationDetector) -> ColumnPlan:
    d = cast(Any, det)  # a _DocumentAfter: kind and thresholds
    opens = frozenset(d.opens)
    key = f"refs.{d.key_ref}"
    return {
        key: opens | frozenset(d.closes),
        "attrs.kind": frozenset(d.closes),
        **{f"attrs.{name}": opens for name in when_keys(d.thresholds)},
    }


def _sides(det: ExpectationDetector, table: pd.DataFrame) -> Sides:
    d = cast(Any, det)
    columns = list(_needs(det))
    key = f"refs.{d.key_ref}"
    rows = of_types(table, d.opens, *columns)
    due = rows["time"].to_numpy() + per_row(d.thresholds, rows)["within"]
    closing = of_types(table, d.closes, *columns)
    return Sides(
        openers(rows, key, due),
        events_of(closing, attr_equals(closing, "kind", d.kind), key),
        events_of(closing, np.zeros(len(closing), dtype=bool), key),
    )


#: How the oracle reads both letter detectors (they differ only in settings and words).
DOCUMENT_AFTER = ExpectationForm(_needs, _sides)
