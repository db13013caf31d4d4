"""The canonical event: the one shape every input format is turned into.

The contract (names never change; new fields may be added) is documented in
``docs/events.md``. Times are carried as float seconds since the Unix epoch, UTC; the
text form on the wire is ISO-8601 with an explicit UTC offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from detectors.errors import EventError

__all__ = [
    "ATTR_TYPES",
    "BUILTIN_TYPES",
    "RECIPIENTS",
    "REF_KINDS",
    "Event",
    "event_from_dict",
    "format_time",
    "parse_time",
]

#: Event types the built-in detectors read. Rules may add their own types.
BUILTIN_TYPES: frozenset[str] = frozenset(
    {
        "appointment.booked",
        "appointment.rescheduled",
        "appointment.cancelled",
        "appointment.attended",
        "appointment.missed",
        "patient.notified",
        "order.placed",
        "order.cancelled",
        "result.reported",
        "result.acknowledged",
        "document.sent",
        "encounter.discharged",
        "patient.died",
        "session.capacity",
    }
)

#: The ids an event may be about. Other keys in ``refs`` are kept but not used by built-ins.
REF_KINDS: tuple[str, ...] = ("appointment", "order", "encounter", "document", "session")


class Event:
    """One thing that happened in care.

    ``time`` is the event time in float seconds since the epoch (UTC). ``patient`` is
    ``None`` for events about no single patient (``session.capacity``).

    Read-only by contract: detectors and sinks must never change an event (one event
    reaches several detectors). Written out rather than a dataclass: the compiled build
    (``setup.py``) builds a class with a hand-written ``__init__`` natively, but runs a
    dataclass's generated one as Python, and one is built for every input event.
    Compared and shown field by field, like a dataclass.
    """

    __slots__ = ("attrs", "id", "patient", "refs", "source", "time", "type")

    def __init__(
        self,
        id: str,
        type: str,
        time: float,
        patient: str | None = None,
        refs: dict[str, str] | None = None,
        attrs: dict[str, Any] | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.type = type
        self.time = time
        self.patient = patient
        self.refs: dict[str, str] = {} if refs is None else refs
        self.attrs: dict[str, Any] = {} if attrs is None else attrs
        self.source = source

    def _fields(self) -> tuple[Any, ...]:
        return (self.id, self.type, self.time, self.patient, self.refs, self.attrs, self.source)

    def __reduce__(self) -> tuple[type[Event], tuple[Any, ...]]:
        # pickle and copy rebuild it through __init__: the compiled class has no other way
        return (Event, self._fields())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable fields: unhashable, as a dataclass

    def __repr__(self) -> str:
        return (
            f"Event(id={self.id!r}, type={self.type!r}, time={self.time!r}, "
            f"patient={self.patient!r}, refs={self.refs!r}, attrs={self.attrs!r}, "
            f"source={self.source!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire form (JSON-ready dict) of this event."""
        out: dict[str, Any] = {"id": self.id, "type": self.type, "time": format_time(self.time)}
        if self.patient is not None:
            out["patient"] = self.patient
        out["refs"] = self.refs
        out["attrs"] = self.attrs
        if self.source is not None:
            out["source"] = self.source
        return out


def parse_time(value: Any, *, field_name: str = "time") -> float:
    """Parse an ISO-8601 timestamp that carries a UTC offset into epoch seconds (UTC).

    A timestamp without an offset is refused: guessing the zone of a hospital's clock is
    exactly the kind of silent error this tool exists to catch.
    """
    if not isinstance(value, str):
        raise EventError(
            f"{field_name} must be an ISO-8601 string, got {value!r}", field=field_name
        )
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise EventError(
            f"{field_name} {value!r} is not an ISO-8601 timestamp", field=field_name
        ) from None
    if dt.tzinfo is None:
        raise EventError(
            f"{field_name} {value!r} has no UTC offset; write e.g. 2026-03-02T09:30:00+00:00",
            field=field_name,
        )
    return dt.timestamp()


def format_time(seconds: float) -> str:
    """Render epoch seconds as ISO-8601 in UTC with a ``+00:00`` offset (second precision
    unless there are fractional seconds)."""
    dt = datetime.fromtimestamp(seconds, UTC)
    if dt.microsecond:
        return dt.isoformat()
    return dt.isoformat(timespec="seconds")


_is_str = partial(type.__instancecheck__, str)  # isinstance(v, str), with no Python frame


def _str_map(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError(f"{name} must be an object", field=name)
    out: dict[str, str] = {}
    for k, v in value.items():
        if v is None:
            continue
        if isinstance(v, str):
            out[k] = v
        else:
            raise EventError(
                f"{name}.{k} must be a string id, got {_json_type(v)} {v!r} (write it in "
                'quotes: a number id loses leading zeros, e.g. "007")',
                field=f"{name}.{k}",
            )
    return out


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


#: The types of the attrs the built-in detectors read (``docs/events.md``): a value of
#: another type would silently open or match nothing (``"critical": "true"`` is text, not
#: true), so it is refused instead.
ATTR_TYPES: dict[str, tuple[type, ...]] = {
    "critical": (bool,),
    "abnormal": (bool,),
    "deceased": (bool,),
    "capacity": (int,),
    "kind": (str,),
    "initiated_by": (str,),
    "recipient": (str,),
    "priority": (str,),
    "start": (str,),
    "previous_start": (str,),
}
#: What ``attrs.recipient`` may say: who a document was sent to.
RECIPIENTS: frozenset[str] = frozenset({"patient", "gp", "referrer", "other"})


#: The exact type each typed attr must have (``type(v) is ...``: a bool is no whole
#: number here, and the check stays one dict lookup per attr on every event).
_EXACT: dict[str, type] = {name: types[0] for name, types in ATTR_TYPES.items()}
_WORDS = {bool: "true or false", int: "a whole number", str: "a string"}


def _check_attrs(attrs: dict[str, Any]) -> None:
    exact = _EXACT
    for name, v in attrs.items():
        want = exact.get(name)
        if want is not None and type(v) is not want and v is not None:
            raise EventError(
                f"attrs.{name} must be {_WORDS[want]}, got {_json_type(v)} {v!r}",
                field=f"attrs.{name}",
            )
    recipient = attrs.get("recipient")
    if recipient is not None and recipient not in RECIPIENTS:
        raise EventError(
            f"attrs.recipient must be one of {sorted(RECIPIENTS)}, got {recipient!r}",
            field="attrs.recipient",
        )


#: Each built-in type's one string object: a decoded event's type is a new string each
#: time, and state kept for the correction horizon holds a type per event it keeps.
_TYPE_NAMES: dict[str, str] = {t: t for t in BUILTIN_TYPES}


def event_from_dict(obj: Any) -> Event:
    """Validate one decoded JSON object against the event contract and build an ``Event``.

    Raises ``EventError`` with the offending field on any breach.
    """
    if not isinstance(obj, dict):
        raise EventError("an event must be a JSON object")
    eid = obj.get("id")
    if not isinstance(eid, str) or not eid:
        if eid is None or eid == "":
            raise EventError("id is missing or empty", field="id")
        raise EventError(
            f"id must be a string, got {_json_type(eid)} {eid!r} (write it in quotes)",
            field="id",
        )
    etype = obj.get("type")
    if not isinstance(etype, str) or not etype:
        raise EventError("type is missing or not a non-empty string", field="type")
    etype = _TYPE_NAMES.get(etype, etype)
    if "time" not in obj:
        raise EventError("time is missing", field="time")
    t = parse_time(obj["time"])
    patient = obj.get("patient")
    if patient is not None and not isinstance(patient, str):
        raise EventError(
            f"patient must be a string id, got {_json_type(patient)} {patient!r} (write it "
            "in quotes: a number id loses leading zeros)",
            field="patient",
        )
    refs = obj.get("refs")
    if not refs:
        refs = {}
    elif type(refs) is not dict or not all(map(_is_str, refs.values())):
        refs = _str_map(refs, "refs")  # the slow path: validate, convert or refuse
    attrs = obj.get("attrs")
    if attrs is None:
        attrs = {}
    elif not isinstance(attrs, dict):
        raise EventError("attrs must be an object", field="attrs")
    elif attrs:
        _check_attrs(attrs)
    source = obj.get("source")
    if source is not None and not isinstance(source, dict):
        source = {"note": str(source)}
    return Event(eid, etype, t, patient, refs, attrs, source)
