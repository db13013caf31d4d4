"""One HL7 v2 message being converted: mapped field reads, ids, patient, output."""

from __future__ import annotations

from typing import Any

from detectors.errors import InputError
from detectors.events import Event
from streams.adapters.hl7.text import Hl7Message, Segment
from streams.adapters.mapping import PatientIdRule, SiteMapping
from streams.adapters.memory import AdapterMemory
from streams.adapters.records import NO_EVENT, EventIds, Record, Rejected, excerpt

__all__ = ["MessageContext", "Scope"]

#: Segments of one group (an order, say), read before the rest of the message.
Scope = dict[str, list[Segment]]


class MessageContext:
    """Everything a handler needs for one message; handlers call ``emit``/``reject``."""

    def __init__(
        self,
        message: Hl7Message,
        mapping: SiteMapping,
        memory: AdapterMemory,
        origin: str,
        location: str,
    ) -> None:
        self.message = message
        self.mapping = mapping
        self.settings = mapping.hl7v2
        self.codes = mapping.codes
        self.clock = mapping.clock
        self.memory = memory
        self.origin = origin
        self.location = location
        self.out: list[Record] = []
        msh = message.segments[0]
        self.control_id = message.component(msh, 10)
        code = message.component(msh, 9, 1, 1)
        trigger = message.component(msh, 9, 1, 2)
        self.message_type = f"{code}^{trigger}"
        if not self.control_id:
            raise InputError("MSH-10 (message control id) is empty: event ids could not be made")
        base = self.control_id
        if self.settings.event_id_includes_sender:
            sender = message.component(msh, 3)
            base = f"{sender}/{base}" if sender else base
        self.ids = EventIds(base)
        self.patient = _patient_id(message, self.settings.patient_id)

    def value(self, name: str, scope: Scope | None = None) -> str:
        """The first non-empty value among the mapped paths for ``name``."""
        for path in self.settings.fields[name]:
            value = self.message.value(path, scope)
            if value:
                return value
        return ""

    def values(self, name: str, scope: Scope | None = None) -> list[str]:
        """Every repetition at the first mapped path for ``name`` that has any."""
        for path in self.settings.fields[name]:
            found = self.message.repetitions(path, scope)
            if found:
                return found
        return []

    def time(self, name: str, scope: Scope | None = None) -> float | None:
        """The first non-empty mapped time for ``name``, as epoch seconds (UTC); a time
        without offset is read in the site's timezone. ``None`` when all are empty.

        A malformed value raises ``InputError``: falling through to the next field would
        silently time the event by something else.
        """
        for path in self.settings.fields[name]:
            value = self.message.value(path, scope)
            if value:
                return self.clock.hl7(value, path.text)
        return None

    def required_time(self, name: str, scope: Scope | None = None) -> float:
        """Like ``time`` but an empty one is an ``InputError`` naming the fields."""
        found = self.time(name, scope)
        if found is None:
            raise InputError(f"no {name.replace('_', ' ')} in {self.paths(name)}")
        return found

    def paths(self, name: str) -> str:
        """The mapped paths for ``name``, for messages (``"SCH-2.1, SCH-1.1"``)."""
        return (
            ", ".join(p.text for p in self.settings.fields[name])
            or f"(no fields mapped for {name})"
        )

    def attrs_from(self, *names: str, scope: Scope | None = None) -> dict[str, Any]:
        """``{name: value}`` for the mapped names that have a value."""
        out: dict[str, Any] = {}
        for name in names:
            value = self.value(name, scope)
            if value:
                out[name] = value
        return out

    def emit(
        self, event_type: str, time: float, refs: dict[str, str], attrs: dict[str, Any]
    ) -> None:
        """Add one canonical event (id, patient and source filled in)."""
        self.out.append(
            Event(
                id=self.ids.next(event_type),
                type=event_type,
                time=time,
                patient=self.patient,
                refs=refs,
                attrs=attrs,
                source={
                    "format": "hl7v2",
                    "message_id": self.control_id,
                    "message_type": self.message_type,
                },
            )
        )

    def reject(self, reason: str, kind: str, where: str = "") -> None:
        """Add a ``Rejected`` for this message (or the part of it named by ``where``)."""
        location = f"{self.location} {where}" if where else self.location
        self.out.append(
            Rejected(
                self.origin,
                location,
                f"{self.message_type}: {reason}",
                excerpt(self.message.text),
                kind,
            )
        )

    def no_event(self, reason: str, where: str = "") -> None:
        """Say that this message (part) carries no care event under the mapping."""
        self.reject(reason, NO_EVENT, where)


def _patient_id(message: Hl7Message, rule: PatientIdRule) -> str | None:
    """The patient id from PID-3 by the mapping's rule (see ``PatientIdRule``)."""
    pid = message.first("PID")
    if pid is None:
        return None
    first: str | None = None
    for raw in message.raw_repetitions(pid, 3):
        components = message.raw_components(raw)
        ident = message.split_subcomponents(components[0])[0]
        if not ident:
            continue
        if first is None:
            first = ident
        if not rule.identifier_types and not rule.assigning_authorities:
            return ident
        if rule.identifier_types:
            kind = message.split_subcomponents(components[4])[0] if len(components) > 4 else ""
            if kind.upper() not in rule.identifier_types:
                continue
        if rule.assigning_authorities:
            authority = message.split_subcomponents(components[3]) if len(components) > 3 else []
            if not any(part.upper() in rule.assigning_authorities for part in authority if part):
                continue
        return ident
    return first if rule.fallback_to_first else None
