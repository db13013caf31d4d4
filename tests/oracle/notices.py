"""``reschedule-notice`` over columns: a hospital-initiated change to an appointment must
be followed by a notice to the patient, due by the earlier of ``notice`` after the change
and the previous start."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd

from detectors.builtin import RescheduleNotice
from detectors.contract import ExpectationDetector
from tests.oracle.expectations import ExpectationForm, Sides, events_of, of_types, openers
from tests.oracle.frame import ColumnPlan, epoch_of
from tests.oracle.match import attr_equals, per_row, when_keys

__all__ = ["RESCHEDULE_NOTICE"]


def _needs(det: ExpectationDetector) -> ColumnPlan:
    d = cast(RescheduleNotice, det)
    opens = frozenset(d.opens)
    attrs = {"initiated_by", "previous_start", "deceased"} | when_keys(d.thresholds)
    return {
        "refs.appointment": opens | frozenset(d.closes),
        "attrs.kind": frozenset({"document.sent"}),
        "patient": opens | frozenset(d.patient_voids),
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
    deceased = attr_equals(rows, "deceased", True)
    due[~(attr_equals(rows, "initiated_by", "hospital") | unknown | deceased)] = np.nan
    closing = of_types(table, d.closes, *columns)
    counts = (closing["type"] == "patient.notified").to_numpy() | attr_equals(
        closing, "kind", "appointment-letter"
    )
    opening = openers(rows, "refs.appointment", due)
    # a change made because the patient died voids from its own time, like a void event
    changed = events_of(rows, deceased & ~np.isnan(due), "refs.appointment")
    reasons = dict.fromkeys(changed["id"], "the change was made because the patient died")
    # a recorded death voids each change of the patient from max(death, change)
    died = of_types(table, d.patient_voids, "patient")
    died = died[died["patient"].notna()].sort_values(["time", "id"])
    first = died.drop_duplicates("patient").set_index("patient")
    # ``opening["row"]`` holds the labels of its rows in ``rows`` (not positions)
    patients = (
        rows.loc[opening["row"].to_numpy(), "patient"].to_numpy(dtype=object)
        if len(opening)
        else np.array([], dtype=object)
    )
    t_d = first["time"].reindex(patients).to_numpy(dtype=np.float64)
    d_id = first["id"].reindex(patients).to_numpy(dtype=object)
    known = ~np.isnan(t_d)
    by_death = pd.DataFrame(
        {
            "key": opening["key"].to_numpy(dtype=object)[known],
            "time": np.maximum(t_d, opening["time"].to_numpy())[known],
            "id": d_id[known],
        }
    )
    reasons.update(dict.fromkeys(by_death["id"], "the patient's death is recorded"))
    voids = pd.concat([changed, by_death], ignore_index=True)
    return Sides(opening, events_of(closing, counts, "refs.appointment"), voids, reasons)


#: How the oracle reads ``reschedule-notice``.
RESCHEDULE_NOTICE = ExpectationForm(_needs, _sides)
