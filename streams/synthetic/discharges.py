"""Inpatient discharges and their summaries to the GP; the truth of
``discharge-summary-overdue``. The encounter id is the key and belongs to one discharge."""

from __future__ import annotations

from itertools import accumulate

from streams.synthetic.allocate import allocate
from streams.synthetic.context import Run
from streams.synthetic.hospital import INPATIENT_SPECIALTIES
from streams.synthetic.timing import DAY, HOUR, MINUTE, DailyCount, HourProfile, is_weekend
from streams.synthetic.truth import DISCHARGE_SUMMARY

__all__ = ["generate_discharges"]

#: Discharges a day at ``medium`` scale (an assumption for a ~600-bed acute hospital).
DISCHARGES_PER_WEEKDAY = 150
WEEKEND_FACTOR = 0.65
DISCHARGE_HOURS = HourProfile(
    [0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 7, 10, 12, 12, 12, 11, 10, 8, 6, 4, 2, 1, 1, 0]
)

_SPECIALTIES = [s for s, _ in INPATIENT_SPECIALTIES]
_SPEC_CUM = list(accumulate(w for _, w in INPATIENT_SPECIALTIES))


def generate_discharges(run: Run) -> None:
    """Emit the discharges of the window and the summaries that follow them."""
    rng = run.rng("discharges")
    counts = DailyCount(rng)
    planned: list[tuple[int, str, str, str]] = []
    for midnight in run.window_midnights():
        expected = DISCHARGES_PER_WEEKDAY * run.scale
        if is_weekend(midnight):
            expected *= WEEKEND_FACTOR
        for _ in range(counts.draw("discharges", expected)):
            planned.append(
                (
                    DISCHARGE_HOURS.time_in(rng, midnight),
                    run.random_patient(rng),
                    rng.choice(run.hospital.sites),
                    rng.choices(_SPECIALTIES, cum_weights=_SPEC_CUM)[0],
                )
            )
    rates = run.rates
    shares = {"late": rates.summary_late, "missed": rates.summary_missed}
    outcomes = allocate(rng, len(planned), shares, "met")
    for (t, patient, site, specialty), outcome in zip(planned, outcomes, strict=True):
        encounter = run.log.new_id("V")
        eid = run.log.emit(
            t,
            "encounter.discharged",
            patient,
            {"encounter": encounter},
            {"site": site, "specialty": specialty},
        )
        edge = rng.random() < rates.edge_cases
        sent: list[int] = []
        if outcome == "met":
            if edge:
                sent.append(t + DISCHARGE_SUMMARY)
            elif rng.random() < 0.85:
                sent.append(t + rng.randint(10 * MINUTE, 12 * HOUR))
            else:
                sent.append(t + rng.randint(12 * HOUR, DISCHARGE_SUMMARY))
        elif outcome == "late":
            sent.append(t + DISCHARGE_SUMMARY + (1 if edge else rng.randint(10 * MINUTE, 4 * DAY)))
        for s in sent:
            run.log.emit(
                s,
                "document.sent",
                patient,
                {"document": run.log.new_id("D", 9), "encounter": encounter},
                {"kind": "discharge-summary", "site": site, "specialty": specialty},
            )
        run.truth.expectation(
            "discharge-summary-overdue", encounter, eid, t, t + DISCHARGE_SUMMARY, sent
        )
