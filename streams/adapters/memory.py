"""What the adapters must remember between messages, in a form a worker can checkpoint.

FHIR R4 has no "previous appointment": a reschedule is the same Appointment seen again
with a different start, and an HL7 SIU^S13 rarely carries the old start either. So the
adapters remember each appointment's last start and status (``AppointmentMemory``), and
which order each diagnostic report answers (``ReportOrderMemory``) so that a Task
acknowledging a report can name the order. Both are plain data, serialisable with
``to_dict``/``from_dict`` (JSON-ready) for a Kafka worker's checkpoint.

Redelivery is normal (at least once), so each appointment also keeps, for its last few
versions (FHIR versionId, HL7 MSH-10), the state before that version: the same version
read again is compared with the same earlier state and yields the same events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detectors.errors import InputError

__all__ = ["AdapterMemory", "AppointmentMemory", "AppointmentState", "ReportOrderMemory"]

_FORMAT = "carewatch-adapter-memory"
_HISTORY = 8


@dataclass(frozen=True, slots=True)
class AppointmentState:
    """What is known of an appointment: ``start`` (epoch seconds, UTC) and ``status``
    (the adapter's word for it: booked, cancelled, attended...), either may be unknown."""

    start: float | None
    status: str | None


class _Entry:
    __slots__ = ("history", "state")

    def __init__(self, state: AppointmentState, history: list[tuple[str, AppointmentState | None]]):
        self.state = state
        self.history = history


class AppointmentMemory:
    """Appointment id -> last known start and status, bounded to ``max_entries``
    (the least recently seen appointments are forgotten first)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, appointment_id: object) -> bool:
        return appointment_id in self._entries

    def get(self, appointment_id: str) -> AppointmentState | None:
        """The last known state of an appointment, or ``None``."""
        entry = self._entries.get(appointment_id)
        return entry.state if entry else None

    def observe(
        self,
        appointment_id: str,
        version: str | None,
        start: float | None,
        status: str | None,
    ) -> AppointmentState | None:
        """Record that ``version`` of an appointment says ``start``/``status`` (``None``
        keeps what was known) and return the state to compare it with: the state before
        it, or ``None`` for an appointment not seen before.

        A version already seen (redelivery) returns the same state as the first time and
        changes nothing, so the caller emits the same events with the same ids.
        """
        entry = self._entries.pop(appointment_id, None)
        if entry is not None and version is not None:
            for seen, before in entry.history:
                if seen == version:
                    self._entries[appointment_id] = entry
                    return before
        before = entry.state if entry else None
        state = AppointmentState(
            start if start is not None else (before.start if before else None),
            status if status is not None else (before.status if before else None),
        )
        history = entry.history[-(_HISTORY - 1) :] if entry else []
        if version is not None:
            history.append((version, before))
        self._entries[appointment_id] = _Entry(state, history)
        if len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]
        return before

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"appointments": {id: {"start", "status", "history"}}}``."""
        return {
            "appointments": {
                key: {
                    "start": entry.state.start,
                    "status": entry.state.status,
                    "history": [
                        [version, None if before is None else [before.start, before.status]]
                        for version, before in entry.history
                    ],
                }
                for key, entry in self._entries.items()
            }
        }

    @classmethod
    def from_dict(cls, data: Any, max_entries: int = 1_000_000) -> AppointmentMemory:
        """Rebuild from ``to_dict`` output. Raises ``InputError`` if it is not that."""
        memory = cls(max_entries)
        table = data.get("appointments") if isinstance(data, dict) else None
        if not isinstance(table, dict):
            raise InputError("appointment memory checkpoint has no 'appointments' object")
        for key, item in table.items():
            try:
                state = AppointmentState(_time(item["start"]), _text(item["status"]))
                history = [
                    (
                        str(version),
                        None
                        if before is None
                        else AppointmentState(_time(before[0]), _text(before[1])),
                    )
                    for version, before in item["history"]
                ]
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise InputError(
                    f"appointment memory checkpoint entry {key!r} is malformed: {exc}"
                ) from None
            memory._entries[str(key)] = _Entry(state, history[-_HISTORY:])
        while len(memory._entries) > max_entries:
            del memory._entries[next(iter(memory._entries))]
        return memory


class ReportOrderMemory:
    """Diagnostic report id -> the order (ServiceRequest) it answers, bounded like
    ``AppointmentMemory``."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._orders: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._orders)

    def remember(self, report_id: str, order_id: str) -> None:
        """Note that report ``report_id`` answers order ``order_id``."""
        self._orders.pop(report_id, None)
        self._orders[report_id] = order_id
        if len(self._orders) > self.max_entries:
            del self._orders[next(iter(self._orders))]

    def order_of(self, report_id: str) -> str | None:
        """The order a report answers, if known."""
        return self._orders.get(report_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"report_orders": {report: order}}``."""
        return {"report_orders": dict(self._orders)}

    @classmethod
    def from_dict(cls, data: Any, max_entries: int = 1_000_000) -> ReportOrderMemory:
        """Rebuild from ``to_dict`` output. Raises ``InputError`` if it is not that."""
        table = data.get("report_orders") if isinstance(data, dict) else None
        if not isinstance(table, dict):
            raise InputError("report memory checkpoint has no 'report_orders' object")
        memory = cls(max_entries)
        for report, order in table.items():
            if not isinstance(order, str):
                raise InputError(f"report memory checkpoint entry {report!r} is not an order id")
            memory.remember(str(report), order)
        return memory


class AdapterMemory:
    """Everything the adapters remember, as one object to pass in and checkpoint."""

    def __init__(
        self,
        appointments: AppointmentMemory | None = None,
        report_orders: ReportOrderMemory | None = None,
    ) -> None:
        self.appointments = appointments if appointments is not None else AppointmentMemory()
        self.report_orders = report_orders if report_orders is not None else ReportOrderMemory()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready checkpoint of both memories."""
        return {
            "format": _FORMAT,
            "version": 1,
            **self.appointments.to_dict(),
            **self.report_orders.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> AdapterMemory:
        """Rebuild from ``to_dict`` output. Raises ``InputError`` if it is not that."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise InputError(f"not a {_FORMAT} checkpoint")
        if data.get("version") != 1:
            raise InputError(f"unsupported {_FORMAT} version {data.get('version')!r}")
        return cls(AppointmentMemory.from_dict(data), ReportOrderMemory.from_dict(data))


def _time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not epoch seconds")
    return float(value)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not text")
