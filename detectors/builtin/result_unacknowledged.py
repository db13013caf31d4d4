"""``result-unacknowledged``: a critical or abnormal result must be acknowledged.

Opens on ``result.reported`` with ``critical`` true (within ``critical``, default 1 h) or
else ``abnormal`` true (within ``abnormal``, default 7 days); closes on
``result.acknowledged`` for the same order.
"""

from __future__ import annotations

from typing import ClassVar

from detectors.contract import ExpectationDetector, Thresholds
from detectors.events import Event

__all__ = ["ResultUnacknowledged"]


class ResultUnacknowledged(ExpectationDetector):
    """Somebody looks at every critical/abnormal result in time."""

    name: ClassVar[str] = "result-unacknowledged"
    key_ref = "order"
    opens = ("result.reported",)
    closes = ("result.acknowledged",)
    opened_words = "The {severity} result for order {order} was reported"
    expected_words = "its acknowledgement"
    DEFAULTS: ClassVar[dict[str, float]] = {"critical": 3600.0, "abnormal": 7 * 86400.0}

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds(self.DEFAULTS)

    def deadline(self, event: Event) -> float | None:
        a = event.attrs
        if a.get("critical") is True:
            return event.time + self.thresholds.for_event(event)["critical"]
        if a.get("abnormal") is True:
            return event.time + self.thresholds.for_event(event)["abnormal"]
        return None

    def carried_attrs(self, event: Event) -> dict[str, object]:
        out = super().carried_attrs(event)
        out["severity"] = "critical" if event.attrs.get("critical") is True else "abnormal"
        return out
