"""One FHIR resource being converted: references, codes, times, ids and output."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from detectors.errors import InputError
from detectors.events import Event
from streams.adapters.mapping import SiteMapping
from streams.adapters.memory import AdapterMemory
from streams.adapters.records import NO_EVENT, EventIds, Record, Rejected, excerpt

__all__ = ["BundleIndex", "ResourceContext", "as_list", "codings", "reference_id"]

#: Resources of one Bundle by ``Type/id`` and by ``fullUrl``, for resolving references.
BundleIndex = dict[str, dict[str, Any]]


def reference_id(ref: Any, resource_type: str, index: BundleIndex | None = None) -> str | None:
    """The logical id a ``Reference`` points to if it is of ``resource_type``.

    Accepts ``Type/id``, absolute URLs (``.../Type/id/_history/2``) and, inside a
    Bundle, ``urn:uuid:`` full URLs. Contained (``#x``) and display-only references
    give ``None``.
    """
    if not isinstance(ref, dict):
        return None
    target = ref.get("reference")
    if not isinstance(target, str) or not target or target.startswith("#"):
        return None
    if index is not None and target in index:
        found = index[target]
        if found.get("resourceType") != resource_type:
            return None
        rid = found.get("id")
        return rid if isinstance(rid, str) and rid else target.rsplit(":", 1)[-1]
    parts = target.split("/")
    for i in range(len(parts) - 1):
        if parts[i] == resource_type and parts[i + 1]:
            return parts[i + 1]
    return None


def as_list(value: Any) -> list[Any]:
    """An element that should be a list; anything else (a wrong type) reads as empty."""
    return value if isinstance(value, list) else []


def codings(concept: Any) -> list[dict[str, Any]]:
    """The ``coding`` list of a CodeableConcept (or of a list of them), dicts only."""
    concepts = concept if isinstance(concept, list) else [concept]
    out: list[dict[str, Any]] = []
    for item in concepts:
        if isinstance(item, dict) and isinstance(item.get("coding"), list):
            out.extend(c for c in item["coding"] if isinstance(c, dict))
    return out


def _codes(concept: Any) -> list[str]:
    return [c["code"] for c in codings(concept) if isinstance(c.get("code"), str) and c["code"]]


class ResourceContext:
    """Everything a resource handler needs; handlers call ``emit``/``no_event``."""

    def __init__(
        self,
        resource: dict[str, Any],
        mapping: SiteMapping,
        memory: AdapterMemory,
        origin: str,
        location: str,
        index: BundleIndex | None,
        full_url: str | None = None,
    ) -> None:
        self.resource = resource
        self.type = str(resource.get("resourceType"))
        self.mapping = mapping
        self.settings = mapping.fhir
        self.codes = mapping.codes
        self.clock = mapping.clock
        self.memory = memory
        self.origin = origin
        self.location = location
        self.index = index
        self.out: list[Record] = []
        rid = resource.get("id")
        if isinstance(rid, str) and rid.strip():
            self.id: str | None = rid.strip()
        elif full_url and full_url.startswith("urn:uuid:"):
            self.id = full_url.removeprefix("urn:uuid:")
        else:
            self.id = None
        meta = resource.get("meta")
        self.meta: dict[str, Any] = meta if isinstance(meta, dict) else {}
        self.version = self._version_token()
        name = f"{self.type}/{self.id}" if self.id else f"{self.type}#{self._content_hash()}"
        self.name = name
        # Facts that happen once per resource (an order placed, a discharge) get ids
        # without the version, so a later version of the same resource repeats the same
        # id and is deduplicated rather than counted twice.
        self.ids = EventIds(name)
        history = f"/_history/{self.version}" if self._has_version_id() else self.version
        self.versioned_ids = EventIds(f"{name}{history}")

    def require_id(self) -> str:
        """The resource's id; an ``InputError`` when it has none."""
        if self.id is None:
            raise InputError(f"{self.type} has no id")
        return self.id

    def text(self, key: str) -> str | None:
        """A top-level string element, stripped, or ``None``."""
        value = self.resource.get(key)
        return value.strip() or None if isinstance(value, str) else None

    def time_of(self, *keys: str) -> float | None:
        """The first present dateTime among dotted ``keys`` (``meta.lastUpdated``,
        ``period.end``) as epoch seconds (UTC; without offset, site timezone)."""
        for key in keys:
            node: Any = self.resource
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, str) and node.strip():
                return self.clock.iso(node, f"{self.type}.{key}")
            if node is not None and not isinstance(node, str):
                raise InputError(f"{self.type}.{key} must be a dateTime string, got {node!r}")
        return None

    def required_time(self, *keys: str) -> float:
        """Like ``time_of``; none present is an ``InputError`` naming the elements."""
        found = self.time_of(*keys)
        if found is None:
            raise InputError(f"no event time: {self.type} has none of {', '.join(keys)}")
        return found

    def patient(self, *refs: Any) -> str | None:
        """The patient id from the first of ``refs`` that points to a Patient."""
        system = self.settings.patient_identifier_system
        for ref in refs:
            if not isinstance(ref, dict):
                continue
            if system:
                ident = ref.get("identifier")
                if isinstance(ident, dict) and ident.get("system") == system:
                    value = ident.get("value")
                    if isinstance(value, str) and value:
                        return value
                target = ref.get("reference")
                if self.index is not None and isinstance(target, str):
                    found = self.index.get(target)
                    if found is not None and found.get("resourceType") == "Patient":
                        value = patient_identifier(found, system)
                        if value:
                            return value
            logical = reference_id(ref, "Patient", self.index)
            if logical:
                return logical
        return None

    def code(self, concept: Any) -> str | None:
        """The code of a CodeableConcept, preferring ``fhir.test_code_systems`` in order."""
        found = codings(concept)
        for system in self.settings.test_code_systems:
            for coding in found:
                if coding.get("system") == system and isinstance(coding.get("code"), str):
                    return str(coding["code"])
        for coding in found:
            if isinstance(coding.get("code"), str) and coding["code"]:
                return str(coding["code"])
        return None

    def all_codes(self, concept: Any) -> list[str]:
        """Every code in a CodeableConcept (or list of them)."""
        return _codes(concept)

    def emit(
        self,
        event_type: str,
        time: float,
        patient: str | None,
        refs: dict[str, str],
        attrs: dict[str, Any],
        *,
        per_version: bool = False,
    ) -> None:
        """Add one canonical event; ``per_version`` for facts each version can repeat
        (a reschedule, a report re-issued)."""
        ids = self.versioned_ids if per_version else self.ids
        self.out.append(
            Event(
                id=ids.next(event_type),
                type=event_type,
                time=time,
                patient=patient,
                refs=refs,
                attrs=attrs,
                source={"format": "fhir-r4", "resource": self.name, "version": self.version},
            )
        )

    def no_event(self, reason: str) -> None:
        """Say that this resource carries no care event under the mapping."""
        self.reject(reason, NO_EVENT)

    def reject(self, reason: str, kind: str) -> None:
        """Add a ``Rejected`` for this resource."""
        raw = orjson.dumps(self.resource).decode()
        self.out.append(
            Rejected(self.origin, self.location, f"{self.name}: {reason}", excerpt(raw), kind)
        )

    def _has_version_id(self) -> bool:
        version = self.meta.get("versionId")
        return (
            isinstance(version, str | int) and not isinstance(version, bool) and str(version) != ""
        )

    def _version_token(self) -> str:
        """meta.versionId, else ``@<lastUpdated>``, else ``#<content hash>``."""
        if self._has_version_id():
            return str(self.meta["versionId"])
        updated = self.meta.get("lastUpdated")
        if isinstance(updated, str) and updated:
            return f"@{updated}"
        return f"#{self._content_hash()}"

    def _content_hash(self) -> str:
        # Without id or version, the content itself is the only stable identity.
        body = orjson.dumps(self.resource, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()[:16]


def patient_identifier(patient: dict[str, Any], system: str) -> str | None:
    """The value of the Patient.identifier with ``system``, if any."""
    idents = patient.get("identifier")
    if not isinstance(idents, list):
        return None
    for ident in idents:
        if isinstance(ident, dict) and ident.get("system") == system:
            value = ident.get("value")
            if isinstance(value, str) and value:
                return value
    return None
