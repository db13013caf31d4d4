"""Laboratory and imaging orders, their results and the acknowledgement of abnormal ones;
the truth of ``result-overdue`` and ``result-unacknowledged``.

Each order has one path: placed -> [cancelled] -> [result reported] -> [acknowledged].
The order id is the key of both detectors and no other scenario uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from random import Random

from streams.synthetic.allocate import allocate
from streams.synthetic.context import Run
from streams.synthetic.hospital import LAB_TESTS, LabTest
from streams.synthetic.timing import DAY, HOUR, MINUTE, DailyCount, HourProfile, is_weekend
from streams.synthetic.truth import ACK_ABNORMAL, ACK_CRITICAL, TURNAROUND

__all__ = ["generate_orders"]

#: Orders a weekday at ``medium`` scale, and the priority mix (an assumption).
ORDERS_PER_WEEKDAY = 5000
PRIORITY_SHARE = {"stat": 0.10, "urgent": 0.20, "routine": 0.70}
#: Weekend volume relative to a weekday: acute work goes on, routine work mostly stops.
WEEKEND_FACTOR = {"stat": 0.85, "urgent": 0.85, "routine": 0.20}
CRITICAL = 0.015
NORMAL_ACKNOWLEDGED = 0.4

ACUTE_HOURS = HourProfile([2, 2, 2, 2, 2, 3, 4, 6, 8, 9, 9, 9, 9, 9, 9, 9, 8, 8, 7, 6, 5, 4, 3, 2])
OFFICE_HOURS = HourProfile(
    [0, 0, 0, 0, 0, 0, 1, 3, 9, 12, 12, 11, 9, 10, 11, 10, 8, 4, 2, 1, 1, 0, 0, 0]
)

_TEST_CUM = list(accumulate(t.share for t in LAB_TESTS))


@dataclass(slots=True)
class _Order:
    placed_at: int
    patient: str
    test: LabTest
    priority: str
    site: str
    outcome: str = "met"


def generate_orders(run: Run) -> None:
    """Emit the orders placed in the window with their results and acknowledgements."""
    rng = run.rng("orders")
    counts = DailyCount(rng)
    orders: list[_Order] = []
    for midnight in run.window_midnights():
        weekend = is_weekend(midnight)
        for priority, share in PRIORITY_SHARE.items():
            expected = ORDERS_PER_WEEKDAY * run.scale * share
            if weekend:
                expected *= WEEKEND_FACTOR[priority]
            profile = OFFICE_HOURS if priority == "routine" else ACUTE_HOURS
            for _ in range(counts.draw(priority, expected)):
                orders.append(
                    _Order(
                        profile.time_in(rng, midnight),
                        run.random_patient(rng),
                        rng.choices(LAB_TESTS, cum_weights=_TEST_CUM)[0],
                        priority,
                        rng.choice(run.hospital.sites),
                    )
                )
    rates = run.rates
    shares = {
        "late": rates.result_late,
        "missed": rates.result_missed,
        "void": rates.order_cancelled,
    }
    for order, outcome in zip(orders, allocate(rng, len(orders), shares, "met"), strict=True):
        order.outcome = outcome
    to_acknowledge: list[tuple[str, str, str, int, bool]] = []
    for order in orders:
        opened = _emit_order(run, rng, order)
        if opened is not None:
            to_acknowledge.append((order.patient, *opened))
    ack_shares = {"late": rates.ack_late, "missed": rates.ack_missed}
    ack_outcomes = allocate(rng, len(to_acknowledge), ack_shares, "met")
    for (patient, order_id, result_id, t_r, critical), outcome in zip(
        to_acknowledge, ack_outcomes, strict=True
    ):
        _emit_acknowledgement(run, rng, patient, order_id, result_id, t_r, critical, outcome)


def _emit_order(run: Run, rng: Random, order: _Order) -> tuple[str, str, int, bool] | None:
    """Emit one order and its result; returns ``(order id, result event id, result time,
    critical)`` when the result opens an acknowledgement opportunity."""
    log = run.log
    oid = log.new_id("O")
    t_a = order.placed_at
    turnaround = TURNAROUND[order.priority]
    due = t_a + turnaround
    refs = {"order": oid}
    placed_id = log.emit(
        t_a,
        "order.placed",
        order.patient,
        refs,
        {"test": order.test.code, "priority": order.priority, "site": order.site},
    )
    edge = rng.random() < run.rates.edge_cases
    result: int | None = None
    cancel: int | None = None
    if order.outcome == "met":
        result = due if edge else t_a + _turnaround(rng, order.priority)
        if edge and rng.random() < 0.5:
            result = t_a + _turnaround(rng, order.priority)
            cancel = result  # a tie goes to the result: still met
    elif order.outcome == "late":
        result = due + (1 if edge else _overrun(rng, order.priority))
    elif order.outcome == "void":
        cancel = due if edge else t_a + rng.randint(MINUTE, turnaround)
        if edge and rng.random() < 0.5:
            cancel = t_a + rng.randint(MINUTE, turnaround)
            result = cancel + rng.randint(MINUTE, DAY)  # after the cancellation: still void
    elif edge:  # missed, at the boundary: cancelled only after the deadline
        cancel = due + rng.randint(MINUTE, 2 * DAY)
        if rng.random() < 0.5:
            result = cancel + rng.randint(MINUTE, DAY)  # the cancellation came first: missed
    if cancel is not None and (result is None or cancel <= result):
        log.emit(cancel, "order.cancelled", order.patient, refs, {})
    opened = None
    if result is not None:
        critical = rng.random() < CRITICAL
        abnormal = critical or rng.random() < order.test.abnormal
        result_refs = dict(refs)
        if order.test.has_report:
            result_refs["document"] = log.new_id("D", 9)
        result_id = log.emit(
            result,
            "result.reported",
            order.patient,
            result_refs,
            {
                "test": order.test.code,
                "abnormal": abnormal,
                "critical": critical,
                "priority": order.priority,
                "site": order.site,
            },
        )
        if abnormal:
            opened = (oid, result_id, result, critical)
        elif rng.random() < NORMAL_ACKNOWLEDGED:
            log.emit(
                result + rng.randint(HOUR, 72 * HOUR),
                "result.acknowledged",
                order.patient,
                refs,
                {},
            )
    if cancel is not None and result is not None and cancel > result:
        log.emit(cancel, "order.cancelled", order.patient, refs, {})
    closes = [] if result is None else [result]
    voids = [] if cancel is None else [cancel]
    run.truth.expectation("result-overdue", oid, placed_id, t_a, due, closes, voids)
    return opened


def _emit_acknowledgement(
    run: Run,
    rng: Random,
    patient: str,
    order_id: str,
    result_id: str,
    t_r: int,
    critical: bool,
    outcome: str,
) -> None:
    window = ACK_CRITICAL if critical else ACK_ABNORMAL
    due = t_r + window
    edge = rng.random() < run.rates.edge_cases
    acks: list[int] = []
    if outcome == "met":
        if edge:
            acks.append(due)
        elif critical:
            acks.append(t_r + rng.randint(2 * MINUTE, 55 * MINUTE))
        elif rng.random() < 0.8:
            acks.append(t_r + rng.randint(10 * MINUTE, 48 * HOUR))
        else:
            acks.append(t_r + rng.randint(48 * HOUR, 6 * DAY))
    elif outcome == "late":
        if edge:
            acks.append(due + 1)
        elif critical:
            acks.append(due + rng.randint(MINUTE, 8 * HOUR))
        else:
            acks.append(due + rng.randint(HOUR, 5 * DAY))
    for t in acks:
        run.log.emit(t, "result.acknowledged", patient, {"order": order_id}, {})
    run.truth.expectation("result-unacknowledged", order_id, result_id, t_r, due, acks)


def _turnaround(rng: Random, priority: str) -> int:
    """A turnaround within the deadline, in seconds."""
    if priority == "stat":
        return rng.randint(15 * MINUTE, 55 * MINUTE)
    if priority == "urgent":
        return rng.randint(30 * MINUTE, 220 * MINUTE)
    if rng.random() < 0.75:
        return rng.randint(HOUR, 12 * HOUR)
    return rng.randint(12 * HOUR, 70 * HOUR)


def _overrun(rng: Random, priority: str) -> int:
    """How far past its deadline a late result comes, in seconds (at most a few days)."""
    if priority == "stat":
        return rng.randint(2 * MINUTE, 4 * HOUR)
    if priority == "urgent":
        return rng.randint(5 * MINUTE, 12 * HOUR)
    return rng.randint(HOUR, 4 * DAY)
