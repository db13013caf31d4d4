"""Settings of a synthetic run: how big the hospital is, how often each process fails,
and which delivery faults to put into the output.

All rates are fractions in ``[0, 1]``. Durations are float seconds. The start of a run is
a calendar date, taken as midnight UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime

from detectors.errors import ConfigError

__all__ = [
    "DEFAULT_START",
    "FAILURE_PRESETS",
    "SCALES",
    "DeliveryFaults",
    "FailureRates",
    "GeneratorConfig",
]

#: A Monday, so that a default week runs Monday to Sunday.
DEFAULT_START = date(2026, 3, 2)

#: Volume multipliers; ``medium`` is a mid-size acute hospital.
SCALES: dict[str, float] = {"small": 0.05, "medium": 1.0, "large": 3.0}


@dataclass(frozen=True, slots=True)
class FailureRates:
    """How often each care process fails, as a fraction of its opportunities.

    ``late`` and ``missed`` fractions of the same process are disjoint. ``order_cancelled``
    (orders cancelled before their result: ``void``) and ``edge_cases`` (outcomes drawn at
    a boundary, e.g. a result at exactly its deadline) are not failures.
    """

    notice_late: float = 0.04
    notice_missed: float = 0.03
    result_late: float = 0.03
    result_missed: float = 0.01
    order_cancelled: float = 0.02
    ack_late: float = 0.04
    ack_missed: float = 0.02
    summary_late: float = 0.05
    summary_missed: float = 0.02
    letter_late: float = 0.05
    letter_missed: float = 0.02
    overbooked: float = 0.03
    contact_after_death: float = 0.10
    edge_cases: float = 0.01

    def validate(self) -> None:
        """Raise ``ConfigError`` when a rate is outside ``[0, 1]`` or a process's failure
        fractions add up to more than all of its opportunities."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"failure rate {f.name} = {value!r} must be between 0 and 1")
        groups = {
            "notice": self.notice_late + self.notice_missed,
            "result": self.result_late + self.result_missed + self.order_cancelled,
            "ack": self.ack_late + self.ack_missed,
            "summary": self.summary_late + self.summary_missed,
            "letter": self.letter_late + self.letter_missed,
        }
        for name, total in groups.items():
            if total > 1.0:
                raise ConfigError(f"the {name} rates add up to {total:.3f}; keep them at most 1")


def _scaled(factor: float) -> FailureRates:
    """The default rates with every failure rate multiplied by ``factor`` (voids and edge
    cases unchanged)."""
    base = FailureRates()
    keep = {"order_cancelled", "edge_cases"}
    return replace(
        base,
        **{
            f.name: min(1.0, getattr(base, f.name) * factor)
            for f in fields(base)
            if f.name not in keep
        },
    )


#: ``--failures`` presets.
FAILURE_PRESETS: dict[str, FailureRates] = {
    "none": _scaled(0.0),
    "low": _scaled(0.5),
    "default": FailureRates(),
    "high": _scaled(3.0),
}


@dataclass(frozen=True, slots=True)
class DeliveryFaults:
    """Faults of delivery, applied to the sorted stream after the truth is fixed.

    ``shuffle_within`` (seconds): every event is delivered at most this far behind the
    highest event time delivered before it. ``duplicates``: fraction of events delivered
    a second time, later, within the same bound (600 s when ``shuffle_within`` is 0).
    ``malformed``: malformed lines inserted, as a fraction of the number of events.
    ``delayed``: fraction of events delivered up to ``delay_within`` seconds late (a death
    registered days after it happened, a discharge keyed in after the summary went out).
    ``resend_after`` (seconds, 0: off): the run's first whole day of messages is sent
    again this long after it (an interface re-sending a day after an outage).
    """

    shuffle_within: float = 0.0
    duplicates: float = 0.0
    malformed: float = 0.0
    delayed: float = 0.0
    delay_within: float = 0.0
    resend_after: float = 0.0

    def validate(self) -> None:
        """Raise ``ConfigError`` on a negative bound or a fraction outside ``[0, 1]``."""
        for name in ("shuffle_within", "delay_within", "resend_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must not be negative")
        if self.delayed and not self.delay_within:
            raise ConfigError("--delayed needs --delay-within (how late, e.g. 5d)")
        for name in ("duplicates", "malformed", "delayed"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{name} {value!r} must be a fraction between 0 and 1")

    @property
    def active(self) -> bool:
        """Whether any fault is requested."""
        return bool(
            self.shuffle_within
            or self.duplicates
            or self.malformed
            or self.delayed
            or self.resend_after
        )


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """One synthetic run: ``days`` calendar days of care from ``start`` (midnight UTC),
    reproducible from ``seed``."""

    days: int = 7
    seed: int = 0
    start: date = DEFAULT_START
    scale: str = "medium"
    rates: FailureRates = field(default_factory=FailureRates)

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first unusable setting."""
        if not 1 <= self.days <= 3660:
            raise ConfigError(f"--days {self.days} must be between 1 and 3660")
        if self.scale not in SCALES:
            raise ConfigError(f"--scale {self.scale!r} must be one of {', '.join(SCALES)}")
        self.rates.validate()

    @property
    def start_epoch(self) -> int:
        """Midnight UTC of ``start``, in seconds since the epoch."""
        return int(
            datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp()
        )
