"""What the adapters must remember between messages, in a form a worker can checkpoint.

FHIR R4 has no "previous appointment": a reschedule is the same Appointment seen again
with a different start, and an HL7 SIU^S13 rarely carries the old start either; an HL7
cancellation (SIU^S15) rarely says where the appointment was. So the adapters remember
each appointment's last start, status and place (``AppointmentMemory``), and
which order each diagnostic report answers (``ReportOrderMemory``) so that a Task
acknowledging a report can name the order. Both are plain data, serialisable with
``to_dict``/``from_dict`` (JSON-ready) for a Kafka worker's checkpoint.

Redelivery is normal (at least once), so each appointment also keeps, for its last few
versions (FHIR versionId, HL7 MSH-10), the state before that version: the same version
read again is compared with the same earlier state and yields the same events. Versions
can also arrive out of order: the state keeps the ``rank`` of the version it comes from
(FHIR ``meta.versionId``, else ``meta.lastUpdated``), so an older version read after a
newer one is known as such (``is_older``) and changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detectors.errors import InputError

__all__ = [
    "AdapterMemory",
    "AppointmentMemory",
    "AppointmentState",
    "Place",
    "Rank",
    "ReportOrderMemory",
]

_FORMAT = "carewatch-adapter-memory"
_HISTORY = 8


#: The order of an appointment's versions: ``(0, versionId)`` for a numeric FHIR
#: versionId, ``(1, lastUpdated)`` (epoch seconds, UTC) otherwise. Ranks of different
#: kinds are not compared.
Rank = tuple[int, float]
#: Where an appointment is: ``(name, value)`` pairs of site, clinic and specialty.
Place = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class AppointmentState:
    """What is known of an appointment: ``start`` (epoch seconds, UTC), ``status`` (the
    adapter's word for it: booked, cancelled, attended...), ``place`` (site, clinic,
    specialty of the booking) and the ``rank`` of the version it was read from; any of
    them may be unknown."""

    start: float | None
    status: str | None
    place: Place = ()
    rank: Rank | None = None


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

    def is_older(self, appointment_id: str, rank: Rank | None) -> bool:
        """Whether a version of ``rank`` is older than the one the remembered state comes
        from (ranks of the same kind only: otherwise nothing is known to be older)."""
        entry = self._entries.get(appointment_id)
        known = entry.state.rank if entry is not None else None
        return rank is not None and known is not None and rank[0] == known[0] and rank < known

    def observe(
        self,
        appointment_id: str,
        version: str | None,
        start: float | None,
        status: str | None,
        *,
        place: Place = (),
        rank: Rank | None = None,
    ) -> AppointmentState | None:
        """Record that ``version`` (of ``rank``) of an appointment says ``start``,
        ``status`` and ``place`` (``None`` or empty keeps what was known) and return the
        state to compare it with: the state before it, or ``None`` for an appointment not
        seen before.

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
            place or (before.place if before else ()),
            rank if rank is not None else (before.rank if before else None),
        )
        history = entry.history[-(_HISTORY - 1) :] if entry else []
        if version is not None:
            history.append((version, before))
        self._entries[appointment_id] = _Entry(state, history)
        if len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]
        return before

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"appointments": {id: {"start", "status", "place", "rank",
        "history"}}}``; a state in the history is ``[start, status, place, rank]``."""
        return {
            "appointments": {
                key: {
                    "start": entry.state.start,
                    "status": entry.state.status,
                    "place": dict(entry.state.place),
                    "rank": None if entry.state.rank is None else list(entry.state.rank),
                    "history": [
                        [
                            version,
                            None
                            if before is None
                            else [
                                before.start,
                                before.status,
                                dict(before.place),
                                None if before.rank is None else list(before.rank),
                            ],
                        ]
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
                # place and rank are newer than the format: a checkpoint may lack them
                state = AppointmentState(
                    _time(item["start"]),
                    _text(item["status"]),
                    _place(item.get("place")),
                    _rank(item.get("rank")),
                )
                history = [
                    (
                        str(version),
                        None
                        if before is None
                        else AppointmentState(
                            _time(before[0]),
                            _text(before[1]),
                            _place(before[2] if len(before) > 2 else None),
                            _rank(before[3] if len(before) > 3 else None),
                        ),
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


def _place(value: Any) -> Place:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{value!r} is not a place (names and values)")
    return tuple(value.items())


def _rank(value: Any) -> Rank | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or value[0] not in (0, 1):
        raise ValueError(f"{value!r} is not a version rank")
    when = _time(value[1])
    if when is None:
        raise ValueError(f"{value!r} is not a version rank")
    return (int(value[0]), when)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not text")
