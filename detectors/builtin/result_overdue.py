"""``result-overdue``: an order needs its result within the turnaround for its priority.

Opens on ``order.placed``; closes on ``result.reported`` for the same order; voided by
``order.cancelled``. Turnaround by ``attrs.priority``: ``stat`` 1 h, ``urgent`` 4 h,
``routine`` 72 h (an unknown priority is treated as routine). Overridable per test code,
site or specialty.
"""

from __future__ import annotations

from typing import ClassVar

from detectors.contract import ExpectationDetector, Thresholds
from detectors.events import Event

__all__ = ["ResultOverdue"]


class ResultOverdue(ExpectationDetector):
    """Every order gets its result back within its turnaround."""

    name: ClassVar[str] = "result-overdue"
    key_ref = "order"
    opens = ("order.placed",)
    closes = ("result.reported",)
    voids = ("order.cancelled",)
    opened_words = "Order {order} was placed"
    expected_words = "its result"
    DEFAULTS: ClassVar[dict[str, float]] = {
        "stat": 3600.0,
        "urgent": 4 * 3600.0,
        "routine": 72 * 3600.0,
    }

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds(self.DEFAULTS)

    def deadline(self, event: Event) -> float | None:
        values = self.thresholds.for_event(event)
        priority = event.attrs.get("priority")
        turnaround = values.get(priority) if isinstance(priority, str) else None
        return event.time + (turnaround if turnaround is not None else values["routine"])
