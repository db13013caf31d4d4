"""Inpatient discharges and their summaries to the GP; the truth of
``discharge-summary-overdue``. The encounter id is the key and belongs to one discharge.

Two clinical cases a real feed has: a discharge keyed in again (a second A03 for the same
encounter, a correction: the encounter still owes one summary, due from the first), and
inpatient deaths, whose discharge summary goes to the GP after the death (required, not
a contact with a dead patient)."""

from __future__ import annotations

from itertools import accumulate

from streams.synthetic.allocate import allocate
from streams.synthetic.context import Run
from streams.synthetic.hospital import INPATIENT_SPECIALTIES
from streams.synthetic.timing import DAY, HOUR, MINUTE, DailyCount, HourProfile, is_weekend
from streams.synthetic.truth import DISCHARGE_SUMMARY

__all__ = ["generate_discharges", "generate_inpatient_deaths"]

#: Discharges a day at ``medium`` scale (an assumption for a ~600-bed acute hospital).
DISCHARGES_PER_WEEKDAY = 150
WEEKEND_FACTOR = 0.65
DISCHARGE_HOURS = HourProfile(
    [0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 7, 10, 12, 12, 12, 11, 10, 8, 6, 4, 2, 1, 1, 0]
)

#: Share of discharges keyed in twice (a second A03 for the encounter; an assumption).
REKEYED = 0.01
#: Inpatient deaths a day at ``medium`` scale (an assumption for a ~600-bed hospital).
INPATIENT_DEATHS_PER_DAY = 3

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
    again = run.rng("discharges-again")  # own stream: the draws above stay as they were
    for (t, patient, site, specialty), outcome in zip(planned, outcomes, strict=True):
        encounter = run.log.new_id("V")
        eid = run.log.emit(
            t,
            "encounter.discharged",
            patient,
            {"encounter": encounter},
            {"site": site, "specialty": specialty},
        )
        if again.random() < REKEYED:
            # the same discharge keyed in again a little later: one opportunity still
            run.log.emit(
                t + again.randint(5 * MINUTE, 2 * HOUR),
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


def generate_inpatient_deaths(run: Run) -> None:
    """Patients who die in hospital: the death, the encounter's discharge an hour or a few
    after it, and the discharge summary to the GP, in time. No contact-after-death
    violation: the summary is for the GP (``attrs.recipient`` by its kind)."""
    rng = run.rng("inpatient-deaths")
    counts = DailyCount(rng)
    for midnight in run.window_midnights():
        for _ in range(counts.draw("inpatient-deaths", INPATIENT_DEATHS_PER_DAY * run.scale)):
            patient = run.new_deceased_patient()
            site = rng.choice(run.hospital.sites)
            specialty = rng.choices(_SPECIALTIES, cum_weights=_SPEC_CUM)[0]
            where = {"site": site, "specialty": specialty}
            died = midnight + rng.randrange(DAY)
            run.log.emit(died, "patient.died", patient, {}, {})
            t = died + rng.randint(30 * MINUTE, 6 * HOUR)
            encounter = run.log.new_id("V")
            eid = run.log.emit(t, "encounter.discharged", patient, {"encounter": encounter}, where)
            sent = t + rng.randint(HOUR, DISCHARGE_SUMMARY - HOUR)
            run.log.emit(
                sent,
                "document.sent",
                patient,
                {"document": run.log.new_id("D", 9), "encounter": encounter},
                {"kind": "discharge-summary", **where},
            )
            run.truth.expectation(
                "discharge-summary-overdue", encounter, eid, t, t + DISCHARGE_SUMMARY, [sent]
            )
