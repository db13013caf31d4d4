"""The site mapping: how one hospital's messages become canonical events.

Loaded from YAML (``load_mapping``), layered over the packaged
``default_mapping.yaml``, validated once, and passed inward as a frozen ``SiteMapping``.
Every setting is explained in ``docs/adapters.md``. Errors are ``RulesError`` carrying
the file and line of the offending setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detectors.config_reader import read_file
from detectors.errors import ConfigError, RulesError
from streams.adapters._settings_reader import SettingsReader
from streams.adapters._yaml_tree import Path, YamlTree, merge_trees, read_yaml_tree
from streams.adapters.hl7.text import FieldPath
from streams.adapters.times import SiteClock

__all__ = [
    "CHANNELS",
    "DOCUMENT_KINDS",
    "PRIORITIES",
    "RECIPIENTS",
    "Codes",
    "FhirSettings",
    "Hl7Settings",
    "NotificationRule",
    "PatientIdRule",
    "SiteMapping",
    "TabularSettings",
    "default_mapping",
    "load_mapping",
    "mapping_schema",
]

PRIORITIES = ("stat", "urgent", "routine")
CHANNELS = ("letter", "sms", "email", "phone", "portal")
DOCUMENT_KINDS = ("clinic-letter", "discharge-summary", "appointment-letter")
#: Who a document may be for (``attrs.recipient``).
RECIPIENTS = ("patient", "gp", "referrer", "other")
_INITIATORS = ("hospital", "patient")
_S14_EVENTS = (
    "appointment.attended",
    "appointment.missed",
    "appointment.cancelled",
    "appointment.rescheduled",
)
_A04_EVENTS = ("encounter.arrived", "appointment.attended")
_DEFAULT_SOURCE = "default_mapping.yaml"


@dataclass(frozen=True)
class Codes:
    """Code tables shared by every format. Keys are upper-cased codes."""

    initiated_by: dict[str, str]
    initiated_by_default: str | None
    priority: dict[str, str]
    default_priority: str
    normal_flags: frozenset[str]
    critical_flags: frozenset[str]
    document_kinds: dict[str, str]
    #: document-type code -> who it is for (``patient``, ``gp``, ``referrer``, ``other``)
    document_recipients: dict[str, str]
    notice_documents: dict[str, str]
    emit_unmapped_documents: bool
    channels: dict[str, str]
    died_dispositions: frozenset[str]

    def initiator(self, reason: str | None) -> str | None:
        """``hospital``/``patient`` for a reason code, else ``initiated_by_default``."""
        if reason:
            found = self.initiated_by.get(reason.upper())
            if found:
                return found
        return self.initiated_by_default

    def priority_of(self, code: str | None) -> str:
        """``stat``/``urgent``/``routine`` for a priority code, else ``default_priority``."""
        if code:
            return self.priority.get(code.upper(), self.default_priority)
        return self.default_priority

    def flags(self, flags: list[str]) -> tuple[bool, bool]:
        """``(abnormal, critical)`` for a result's flags."""
        upper = [f.upper() for f in flags if f]
        abnormal = any(f not in self.normal_flags for f in upper)
        critical = any(f in self.critical_flags for f in upper)
        return abnormal or critical, critical


@dataclass(frozen=True)
class PatientIdRule:
    """Which PID-3 repetition is the patient id (upper-cased type/authority codes)."""

    identifier_types: tuple[str, ...]
    assigning_authorities: tuple[str, ...]
    fallback_to_first: bool


@dataclass(frozen=True)
class NotificationRule:
    """A site segment whose every occurrence means "the patient was notified"."""

    segment: str
    appointment: tuple[FieldPath, ...]
    channel: tuple[FieldPath, ...]
    time: tuple[FieldPath, ...]


@dataclass(frozen=True)
class Hl7Settings:
    """HL7 v2 settings; ``fields`` maps a value's name to the paths tried in order."""

    event_id_includes_sender: bool
    patient_id: PatientIdRule
    fields: dict[str, tuple[FieldPath, ...]]
    s14_statuses: dict[str, str]
    s14_start_change_is_reschedule: bool
    a04_event: str
    order_placed: frozenset[str]
    order_cancelled: frozenset[str]
    result_reported: frozenset[str]
    result_cancelled: frozenset[str]
    document_statuses: frozenset[str]
    notifications: tuple[NotificationRule, ...]


@dataclass(frozen=True)
class FhirSettings:
    """FHIR R4 settings. Status sets hold FHIR codes as written (lower case)."""

    patient_identifier_system: str | None
    test_code_systems: tuple[str, ...]
    result_statuses: frozenset[str]
    document_statuses: frozenset[str]
    communication_statuses: frozenset[str]
    communication_requires_patient_recipient: bool
    task_statuses: frozenset[str]


@dataclass(frozen=True)
class TabularSettings:
    """Event-log columns. ``id_column`` ``None`` means ids are hashed from the row."""

    id_column: str | None
    type_column: str
    time_column: str
    patient_column: str | None
    ref_columns: dict[str, str]
    attr_columns: dict[str, str]
    type_values: dict[str, str]
    delimiter: str
    encoding: str


@dataclass(frozen=True)
class SiteMapping:
    """The whole validated site mapping. ``source`` names the file it came from."""

    timezone: str
    date_only: str
    codes: Codes
    hl7v2: Hl7Settings
    fhir: FhirSettings
    tabular: TabularSettings
    source: str = _DEFAULT_SOURCE

    @property
    def clock(self) -> SiteClock:
        """The ``SiteClock`` for this site's timezone and date-only policy."""
        return _clock(self.timezone, self.date_only)


@lru_cache(maxsize=8)
def _clock(zone: str, date_only: str) -> SiteClock:
    return SiteClock.named(zone, date_only)


def _default_tree() -> YamlTree:
    text = resources.files("streams.adapters").joinpath("default_mapping.yaml").read_text("utf-8")
    return read_yaml_tree(text, _DEFAULT_SOURCE)


@lru_cache(maxsize=1)
def default_mapping() -> SiteMapping:
    """The packaged defaults alone (what a site without a mapping file gets)."""
    tree = _default_tree()
    return _build(tree, tree.data)


def load_mapping(path: str | os.PathLike[str] | None = None) -> SiteMapping:
    """Load a site mapping file over the packaged defaults; ``None`` gives the defaults.

    Raises ``RulesError`` (with the file and line) for unreadable files, YAML errors,
    unknown settings and invalid values.
    """
    if path is None:
        return default_mapping()
    source = os.fspath(path)
    try:
        data = read_file(source, "site mapping")
        text = data.decode("utf-8-sig")
    except ConfigError as exc:
        if isinstance(exc, RulesError):
            raise
        raise RulesError(f"cannot read the site mapping: {exc}", source=source) from None
    except UnicodeDecodeError as exc:
        raise RulesError(f"cannot read the site mapping: {exc}", source=source) from None
    return mapping_from_text(text, source)


def mapping_from_text(text: str, source: str = "<mapping>") -> SiteMapping:
    """Like ``load_mapping`` for YAML already in memory; ``source`` names it in errors."""
    user = read_yaml_tree(text, source)
    if not isinstance(user.data, dict):
        raise user.error((), "a site mapping must be a YAML mapping of settings")
    base = _default_tree()
    return _build(merge_trees(base, user), base.data)


def _build(tree: YamlTree, defaults: dict[str, Any]) -> SiteMapping:
    r = SettingsReader(tree, defaults)
    r.section(())
    zone = r.text(("timezone",))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        if zone:
            r.report(("timezone",), f"unknown timezone {zone!r}; write e.g. Europe/London")
    mapping = SiteMapping(
        timezone=zone,
        date_only=r.choice(("date_only",), ("midnight", "reject")),
        codes=_codes(r),
        hl7v2=_hl7(r),
        fhir=_fhir(r),
        tabular=_tabular(r),
        source=tree.source,
    )
    r.finish()  # every problem of the file at once
    return mapping


def _codes(r: SettingsReader) -> Codes:
    p: Path = ("codes",)
    r.section(p)
    return Codes(
        initiated_by=r.code_table((*p, "initiated_by"), _INITIATORS),
        initiated_by_default=r.optional_choice((*p, "initiated_by_default"), _INITIATORS),
        priority=r.code_table((*p, "priority"), PRIORITIES),
        default_priority=r.choice((*p, "default_priority"), PRIORITIES),
        normal_flags=frozenset(r.codes((*p, "normal_flags"))),
        critical_flags=frozenset(r.codes((*p, "critical_flags"))),
        document_kinds=r.code_table((*p, "document_kinds"), DOCUMENT_KINDS),
        document_recipients=r.code_table((*p, "document_recipients"), RECIPIENTS),
        notice_documents=r.code_map((*p, "notice_documents"), CHANNELS),
        emit_unmapped_documents=r.boolean((*p, "emit_unmapped_documents")),
        channels=r.code_table((*p, "channels"), CHANNELS),
        died_dispositions=frozenset(r.codes((*p, "died_dispositions"))),
    )


def _hl7(r: SettingsReader) -> Hl7Settings:
    p: Path = ("hl7v2",)
    r.section(p)
    r.section((*p, "patient_id"))
    names = r.section((*p, "fields"))
    fields = {name: r.field_paths((*p, "fields", name)) for name in names}
    r.section((*p, "order_control"))
    r.section((*p, "result_status"))
    return Hl7Settings(
        event_id_includes_sender=r.boolean((*p, "event_id_includes_sender")),
        patient_id=PatientIdRule(
            identifier_types=r.codes((*p, "patient_id", "identifier_types")),
            assigning_authorities=r.codes((*p, "patient_id", "assigning_authorities")),
            fallback_to_first=r.boolean((*p, "patient_id", "fallback_to_first")),
        ),
        fields=fields,
        s14_statuses=r.code_map((*p, "s14_statuses"), _S14_EVENTS),
        s14_start_change_is_reschedule=r.boolean((*p, "s14_start_change_is_reschedule")),
        a04_event=r.choice((*p, "a04_event"), _A04_EVENTS),
        order_placed=frozenset(r.codes((*p, "order_control", "placed"))),
        order_cancelled=frozenset(r.codes((*p, "order_control", "cancelled"))),
        result_reported=frozenset(r.codes((*p, "result_status", "reported"))),
        result_cancelled=frozenset(r.codes((*p, "result_status", "cancelled"))),
        document_statuses=frozenset(r.codes((*p, "document_statuses"))),
        notifications=_notification_rules(r, (*p, "notifications")),
    )


def _notification_rules(r: SettingsReader, p: Path) -> tuple[NotificationRule, ...]:
    items = r.get(p)
    if items is None:
        return ()
    if not isinstance(items, list):
        r.report(p, "notifications must be a list of {segment, appointment, channel, time}")
        return ()
    rules = []
    for index, item in enumerate(items):
        ip = (*p, index)
        if not isinstance(item, dict):
            r.report(ip, "each notification rule must be a mapping")
            continue
        r.section(ip, allowed=("segment", "appointment", "channel", "time"))
        segment = r.text((*ip, "segment"))
        if segment and (len(segment) != 3 or not segment.isalnum() or not segment.isupper()):
            r.report((*ip, "segment"), f"segment {segment!r} is not a segment id like ZNT")
        rules.append(
            NotificationRule(
                segment=segment,
                appointment=r.field_paths((*ip, "appointment")),
                channel=r.field_paths((*ip, "channel")),
                time=r.field_paths((*ip, "time")),
            )
        )
    return tuple(rules)


def _fhir(r: SettingsReader) -> FhirSettings:
    p: Path = ("fhir",)
    r.section(p)
    return FhirSettings(
        patient_identifier_system=r.optional_text((*p, "patient_identifier_system")),
        test_code_systems=r.texts((*p, "test_code_systems")),
        result_statuses=frozenset(r.texts((*p, "result_statuses"))),
        document_statuses=frozenset(r.texts((*p, "document_statuses"))),
        communication_statuses=frozenset(r.texts((*p, "communication_statuses"))),
        communication_requires_patient_recipient=r.boolean(
            (*p, "communication_requires_patient_recipient")
        ),
        task_statuses=frozenset(r.texts((*p, "task_statuses"))),
    )


def _tabular(r: SettingsReader) -> TabularSettings:
    p: Path = ("tabular",)
    r.section(p)
    cols: Path = (*p, "columns")
    r.section(cols)
    r.section((*p, "csv"))
    delimiter = r.text((*p, "csv", "delimiter"))
    if delimiter and len(delimiter) != 1:
        r.report((*p, "csv", "delimiter"), "the CSV delimiter must be one character")
    encoding = r.text((*p, "csv", "encoding"))
    try:
        "".encode(encoding)
    except LookupError:
        if encoding:
            r.report((*p, "csv", "encoding"), f"unknown text encoding {encoding!r}")
    return TabularSettings(
        id_column=r.optional_text((*cols, "id")),
        type_column=r.text((*cols, "type")),
        time_column=r.text((*cols, "time")),
        patient_column=r.optional_text((*cols, "patient")),
        ref_columns=r.text_map((*cols, "refs")),
        attr_columns=r.text_map((*cols, "attrs")),
        type_values=r.text_map((*p, "type_values")),
        delimiter=delimiter,
        encoding=encoding,
    )


# ---------------------------------------------------------------- JSON Schema for editors

_CODES_SCHEMA: dict[str, Any] = {
    "type": ["array", "null"],
    "items": {"type": ["string", "number", "boolean"]},
    "description": "a list of codes, even of one: [A, B]",
}
_TEXT_SCHEMA: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def _code_table_schema(values: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "properties": {value: _CODES_SCHEMA for value in values},
        "additionalProperties": False,
    }


def _open_map_schema(values: dict[str, Any]) -> dict[str, Any]:
    return {"type": ["object", "null"], "additionalProperties": values}


#: Settings whose shape the defaults alone do not show (empty maps, nulls, choices).
_SCHEMA_SPECIAL: dict[Path, dict[str, Any]] = {
    ("timezone",): {"type": "string", "description": "an IANA zone such as Europe/London"},
    ("date_only",): {"enum": ["midnight", "reject"]},
    ("codes", "initiated_by"): _code_table_schema(_INITIATORS),
    ("codes", "initiated_by_default"): {"enum": [*_INITIATORS, None]},
    ("codes", "priority"): _code_table_schema(PRIORITIES),
    ("codes", "default_priority"): {"enum": list(PRIORITIES)},
    ("codes", "document_kinds"): _code_table_schema(DOCUMENT_KINDS),
    ("codes", "document_recipients"): _code_table_schema(RECIPIENTS),
    ("codes", "notice_documents"): _open_map_schema({"enum": list(CHANNELS)}),
    ("codes", "channels"): _code_table_schema(CHANNELS),
    ("hl7v2", "s14_statuses"): _open_map_schema({"enum": list(_S14_EVENTS)}),
    ("hl7v2", "a04_event"): {"enum": list(_A04_EVENTS)},
    ("hl7v2", "notifications"): {
        "type": ["array", "null"],
        "items": {
            "type": "object",
            "properties": {
                "segment": {"type": "string", "pattern": "^[A-Z0-9]{3}$"},
                "appointment": _CODES_SCHEMA,
                "channel": _CODES_SCHEMA,
                "time": _CODES_SCHEMA,
            },
            "required": ["segment"],
            "additionalProperties": False,
        },
    },
    ("fhir", "patient_identifier_system"): {"type": ["string", "null"]},
    ("tabular", "columns", "id"): {"type": ["string", "null"]},
    ("tabular", "columns", "patient"): {"type": ["string", "null"]},
    ("tabular", "columns", "refs"): _open_map_schema(_TEXT_SCHEMA),
    ("tabular", "columns", "attrs"): _open_map_schema(_TEXT_SCHEMA),
    ("tabular", "type_values"): _open_map_schema(_TEXT_SCHEMA),
}


def mapping_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of a site mapping file, for editors that check YAML
    as it is typed: the packaged defaults give its keys and shapes. Loading the file
    (``load_mapping``) remains the full check (codes listed twice, field paths...)."""

    def describe(value: Any, path: Path) -> dict[str, Any]:
        special = _SCHEMA_SPECIAL.get(path)
        if special is not None:
            return special
        if isinstance(value, dict):
            return {
                "type": ["object", "null"] if path else "object",
                "properties": {k: describe(v, (*path, k)) for k, v in value.items()},
                "additionalProperties": False,
            }
        if isinstance(value, list):
            return _CODES_SCHEMA
        if value in ("true", "false"):
            return {"type": "boolean"}
        return _TEXT_SCHEMA

    schema = describe(_default_tree().data, ())
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Carewatch site mapping",
        "description": "docs/adapters.md",
        **schema,
    }
