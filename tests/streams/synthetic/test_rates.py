"""A medium hospital looks like a mid-size acute hospital, and failures come at the
configured rates (loose bounds: the shape matters, not the decimals)."""

from __future__ import annotations

from collections import Counter, defaultdict

from detectors.events import parse_time
from streams.synthetic import FailureRates, Generated

DAY = 86400


def _by_day(run: Generated, type_: str) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for t, _, e in run.records:
        if e["type"] == type_:
            counts[(t // DAY + 3) % 7] += 1
    return counts


def _weekdays_mean(counts: dict[int, int]) -> float:
    return sum(counts[d] for d in range(5)) / 5


def test_daily_volumes_of_a_medium_hospital(medium_week: Generated) -> None:
    orders = _by_day(medium_week, "order.placed")
    assert 4500 <= _weekdays_mean(orders) <= 5500
    assert orders[6] < 0.6 * _weekdays_mean(orders)  # far fewer at weekends
    discharges = _by_day(medium_week, "encounter.discharged")
    assert 130 <= _weekdays_mean(discharges) <= 170
    sessions = Counter(
        e["attrs"]["start"][:10] for e in medium_week.events if e["type"] == "session.capacity"
    )
    weekdays = [n for day, n in sessions.items() if day < "2026-03-07"]
    assert all(100 <= n <= 180 for n in weekdays)
    assert sessions.get("2026-03-08", 0) == 0  # no clinics on Sunday


def test_appointments_per_weekday(medium_week: Generated) -> None:
    first_session: dict[str, str] = {}
    for e in medium_week.events:
        if e["type"] == "appointment.booked":
            first_session.setdefault(e["refs"]["appointment"], e["attrs"]["start"][:10])
    per_day = Counter(first_session.values())
    for day in ("2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"):
        assert 1500 <= per_day[day] <= 2500, day


def test_appointment_outcomes_near_nhs_proportions(medium_week: Generated) -> None:
    ends = Counter(
        e["type"]
        for e in medium_week.events
        if e["type"] in ("appointment.attended", "appointment.cancelled", "appointment.missed")
    )
    total = sum(ends.values())
    assert 0.72 <= ends["appointment.attended"] / total <= 0.82
    assert 0.12 <= ends["appointment.cancelled"] / total <= 0.20
    assert 0.04 <= ends["appointment.missed"] / total <= 0.09
    initiated = Counter(
        e["attrs"]["initiated_by"]
        for e in medium_week.events
        if e["type"] in ("appointment.rescheduled", "appointment.cancelled")
    )
    assert initiated["hospital"] > 0 and initiated["patient"] > 0


def test_priorities_and_abnormal_results(medium_week: Generated) -> None:
    placed = [e for e in medium_week.events if e["type"] == "order.placed"]
    weekday = [e for e in placed if (parse_time(e["time"]) // DAY + 3) % 7 < 5]
    share = Counter(e["attrs"]["priority"] for e in weekday)
    assert 0.07 <= share["stat"] / len(weekday) <= 0.13
    assert 0.16 <= share["urgent"] / len(weekday) <= 0.24
    results = [e for e in medium_week.events if e["type"] == "result.reported"]
    abnormal = sum(e["attrs"]["abnormal"] for e in results) / len(results)
    critical = sum(e["attrs"]["critical"] for e in results) / len(results)
    assert 0.20 <= abnormal <= 0.30
    assert 0.01 <= critical <= 0.02


def test_failure_rates_follow_the_settings(medium_week: Generated) -> None:
    rates = FailureRates()
    expected = {
        "reschedule-notice": (rates.notice_late, rates.notice_missed),
        "result-overdue": (rates.result_late, rates.result_missed),
        "result-unacknowledged": (rates.ack_late, rates.ack_missed),
        "discharge-summary-overdue": (rates.summary_late, rates.summary_missed),
        "clinic-letter-overdue": (rates.letter_late, rates.letter_missed),
    }
    by_detector: dict[str, Counter[str]] = defaultdict(Counter)
    for r in medium_week.truth:
        by_detector[r["detector"]][r["outcome"]] += 1
    for detector, (late, missed) in expected.items():
        c = by_detector[detector]
        n = sum(c.values())
        # Exact allocation; boundary cases and notices covering two changes move a few.
        assert abs(c["late"] / n - late) <= 0.01 + late * 0.2, detector
        assert abs(c["missed"] / n - missed) <= 0.01 + missed * 0.2, detector
    sessions = by_detector["clinic-overbooked"]
    assert abs(sessions["violation"] / sum(sessions.values()) - rates.overbooked) < 0.01
    voids = by_detector["result-overdue"]["void"] / sum(by_detector["result-overdue"].values())
    assert abs(voids - rates.order_cancelled) < 0.005
    deaths = sum(1 for e in medium_week.events if e["type"] == "patient.died")
    contacts = by_detector["contact-after-death"]["violation"]
    assert 0.05 * deaths <= contacts <= 0.25 * deaths
