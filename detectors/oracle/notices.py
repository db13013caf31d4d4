"""``reschedule-notice`` over columns: a hospital-initiated change to an appointment must
be followed by a notice to the patient, due by the earlier of ``notice`` after the change
and the previous start."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd

from detectors.builtin import RescheduleNotice
from detectors.contract import ExpectationDetector
from detectors.oracle.expectations import ExpectationForm, Sides, events_of, of_types, openers
from detectors.oracle.frame import ColumnPlan, epoch_of
from detectors.oracle.match import attr_equals, per_row, when_keys

__all__ = ["RESCHEDULE_NOTICE"]


def _needs(det: ExpectationDetector) -> ColumnPlan:
    d = cast(RescheduleNotice, det)
    opens = frozenset(d.opens)
    attrs = {"initiated_by", "previous_start"} | when_keys(d.thresholds)
    return {
        "refs.appointment": opens | frozenset(d.closes),
        "attrs.kind": frozenset({"document.sent"}),
        **{f"attrs.{name}": opens for name in attrs},
    }


def _sides(det: ExpectationDetector, table: pd.DataFrame) -> Sides:
    d = cast(RescheduleNotice, det)
    columns = list(_needs(det))
    rows = of_types(table, d.opens, *columns)
    t = rows["time"].to_numpy()
    due = t + per_row(d.thresholds, rows)["notice"]
    previous = epoch_of(rows["attrs.previous_start"])
    # the previous start caps the deadline only when it is after the change
    due = np.where(previous > t, np.minimum(due, previous), due)
    who = rows["attrs.initiated_by"]
    unknown = (who.isna() | (who == "unknown")).to_numpy() & d.monitor_unknown_initiator
    due[~(attr_equals(rows, "initiated_by", "hospital") | unknown)] = np.nan
    closing = of_types(table, d.closes, *columns)
    counts = (closing["type"] == "patient.notified").to_numpy() | attr_equals(
        closing, "kind", "appointment-letter"
    )
    none = events_of(closing, np.zeros(len(closing), dtype=bool), "refs.appointment")
    return Sides(
        openers(rows, "refs.appointment", due),
        events_of(closing, counts, "refs.appointment"),
        none,
    )


#: How the oracle reads ``reschedule-notice``.
RESCHEDULE_NOTICE = ExpectationForm(_needs, _sides)
