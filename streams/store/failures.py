"""Failure records as rows: parsing, the idempotent upsert, and Carewatch's own closing.

A failure record (the lines of ``failures.jsonl``, the values of ``carewatch.failures``)
becomes one row of ``failures`` (the latest status per ``failure_id``) and one row of
``failure_history`` per status it has had. The upsert is idempotent and independent of
arrival order: a status replaces the stored one only if it ranks higher
(missed/violation < late < withdrawn), so a replay, a repeated delivery or two sinks
writing the same topic leave the same rows.

When Carewatch amends a failure nobody has resolved yet (a missed one turns late, or any
one is withdrawn), the failure is closed on the people's side too, once per status, with
an ``auto-close`` action naming the reason; a person may reopen it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from detectors.errors import InputError
from detectors.events import parse_time
from streams.store.db import Connection

__all__ = [
    "CARE_STATUSES",
    "FailureRow",
    "UpsertResult",
    "auto_close",
    "parse_failure",
    "upsert_rows",
]

#: Carewatch's statuses and their rank: a record replaces the stored one only if higher.
CARE_STATUSES: dict[str, int] = {"missed": 0, "violation": 0, "late": 1, "withdrawn": 2}
#: The actor name of Carewatch's own actions.
CAREWATCH = "carewatch"


@dataclass(frozen=True)
class FailureRow:
    """One failure record, ready for the ``failures`` table. Times: epoch seconds, UTC."""

    failure_id: str
    detector: str
    status: str
    patient: str | None
    appointment: str | None
    order_ref: str | None
    encounter: str | None
    site: str | None
    specialty: str | None
    clinic: str | None
    opened_at: float
    due_at: float | None
    closed_at: float | None
    detected_at: float
    summary: str
    record: str

    @property
    def rank(self) -> int:
        """Where the status stands in missed/violation < late < withdrawn."""
        return CARE_STATUSES[self.status]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(rec: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = rec.get(name)
    if value is None and not required:
        return None
    return parse_time(value, field_name=name)


def parse_failure(value: bytes | str | Mapping[str, Any]) -> FailureRow:
    """A failure record (JSON text or an already parsed object) as a row.

    Raises ``InputError`` naming what is wrong (never the patient) when it is not one.
    """
    if isinstance(value, Mapping):
        rec: Any = value
        raw = orjson.dumps(dict(value)).decode()
    else:
        try:
            rec = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"not JSON: {exc}") from None
        raw = value.decode() if isinstance(value, bytes) else value
    if not isinstance(rec, dict):
        raise InputError("a failure record must be a JSON object")
    for name in ("failure_id", "detector", "status", "summary"):
        if not isinstance(rec.get(name), str) or not rec[name]:
            raise InputError(f"failure record without {name}")
    if rec["status"] not in CARE_STATUSES:
        raise InputError(
            f"unknown status {rec['status']!r} (expected one of {', '.join(CARE_STATUSES)})"
        )
    refs: dict[str, Any] = rec["refs"] if isinstance(rec.get("refs"), dict) else {}
    attrs: dict[str, Any] = rec["attrs"] if isinstance(rec.get("attrs"), dict) else {}
    try:
        opened = _time(rec, "opened_at", True)
        detected = _time(rec, "detected_at", True)
        due = _time(rec, "due_at", False)
        closed = _time(rec, "closed_at", False)
    except InputError:
        raise
    except Exception as exc:  # an EventError from parse_time is an InputError already
        raise InputError(str(exc)) from None
    assert opened is not None and detected is not None
    return FailureRow(
        failure_id=rec["failure_id"],
        detector=rec["detector"],
        status=rec["status"],
        patient=_text(rec.get("patient")),
        appointment=_text(refs.get("appointment")),
        order_ref=_text(refs.get("order")),
        encounter=_text(refs.get("encounter")),
        site=_text(attrs.get("site")),
        specialty=_text(attrs.get("specialty")),
        clinic=_text(attrs.get("clinic")),
        opened_at=opened,
        due_at=due,
        closed_at=closed,
        detected_at=detected,
        summary=rec["summary"],
        record=raw,
    )


@dataclass
class UpsertResult:
    """What one upsert did: rows ``new``, ``amended`` (a higher status), ``unchanged``
    (a repeat), and failures ``auto_closed``."""

    new: int = 0
    amended: int = 0
    unchanged: int = 0
    auto_closed: int = 0


_HISTORY_COLUMNS = ("failure_id", "status", "detected_at", "received_at", "record")
_HISTORY_TYPES = ("text", "text", "float8", "float8", "text")
_COLUMNS = (
    "failure_id", "detector", "status", "status_rank", "patient", "appointment", "order_ref",
    "encounter", "site", "specialty", "clinic", "opened_at", "due_at", "closed_at",
    "detected_at", "summary", "record", "state", "version", "received_at",
)  # fmt: skip
_TYPES = (
    ("text",) * 3
    + ("int4",)
    + ("text",) * 7
    + ("float8",) * 4
    + ("text",) * 3
    + (
        "int4",
        "float8",
    )
)
_ON_CONFLICT = """ON CONFLICT (failure_id) DO UPDATE SET
        status = excluded.status, status_rank = excluded.status_rank,
        closed_at = excluded.closed_at, detected_at = excluded.detected_at,
        summary = excluded.summary, record = excluded.record,
        version = failures.version + 1, received_at = excluded.received_at
    WHERE excluded.status_rank > failures.status_rank
    RETURNING version"""
_CHUNK = 500  # rows per statement on SQLite: 20 values each, under its variable limit


def _rows_source(
    conn: Connection, columns: Sequence[str], types: Sequence[str], rows: list[tuple[Any, ...]]
) -> tuple[str, list[Any]]:
    """``VALUES (...), (...)`` on SQLite; ``SELECT * FROM unnest(arrays)`` on PostgreSQL,
    one parameter per column whatever the row count (a statement psycopg parses once)."""
    if conn.dialect == "postgresql":
        arrays = ", ".join(f"?:b::{t}[]" for t in types)
        return f"SELECT * FROM unnest({arrays})", [list(col) for col in zip(*rows, strict=True)]
    one = "(" + ", ".join("?" * len(columns)) + ")"
    return "VALUES " + ", ".join([one] * len(rows)), [v for row in rows for v in row]


def _chunks(conn: Connection, rows: list[Any]) -> list[list[Any]]:
    size = 5000 if conn.dialect == "postgresql" else _CHUNK
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def upsert_rows(conn: Connection, rows: Sequence[FailureRow], now: float) -> UpsertResult:
    """Write ``rows`` inside the caller's transaction; idempotent, order-independent.

    Set-based statements, rows in ``failure_id`` order, so two writers lock rows in the
    same order (no deadlock between two sinks on PostgreSQL).
    """
    latest: dict[str, FailureRow] = {}
    for row in rows:
        seen = latest.get(row.failure_id)
        if seen is None or row.rank > seen.rank:
            latest[row.failure_id] = row
    history = sorted(
        {(r.failure_id, r.status): (r.failure_id, r.status, r.detected_at, now, r.record)
         for r in rows}.values()
    )  # fmt: skip
    for chunk in _chunks(conn, history):
        source, params = _rows_source(conn, _HISTORY_COLUMNS, _HISTORY_TYPES, chunk)
        conn.execute(
            f"INSERT INTO failure_history ({', '.join(_HISTORY_COLUMNS)}) {source} "
            "ON CONFLICT (failure_id, status) DO NOTHING",
            params,
        )
    ids = sorted(latest)
    values = [
        (
            r.failure_id, r.detector, r.status, r.rank, r.patient, r.appointment, r.order_ref,
            r.encounter, r.site, r.specialty, r.clinic, r.opened_at, r.due_at, r.closed_at,
            r.detected_at, r.summary, r.record, "open", 1, now,
        )
        for r in (latest[i] for i in ids)
    ]  # fmt: skip
    result = UpsertResult()
    for chunk in _chunks(conn, values):
        source, params = _rows_source(conn, _COLUMNS, _TYPES, chunk)
        written = conn.all(
            f"INSERT INTO failures ({', '.join(_COLUMNS)}) {source} {_ON_CONFLICT}",
            params,
        )
        # a new row comes back at version 1, an amended one higher; a repeat not at all
        new = sum(1 for (version,) in written if version == 1)
        result.new += new
        result.amended += len(written) - new
        result.unchanged += len(chunk) - len(written)
    result.auto_closed = auto_close(conn, ids, now)
    return result


def auto_close(conn: Connection, ids: list[str], now: float) -> int:
    """Close, once per status, the failures among ``ids`` that Carewatch amended and no
    person has resolved: withdrawn ones, and late ones that were missed before. One that
    Carewatch itself closed as late and then withdrew gets the newer reason."""
    closed = 0
    for chunk in _chunks(conn, ids):
        if conn.dialect == "postgresql":
            which, params = "= ANY(?:b::text[])", [chunk]
        else:
            which, params = f"IN ({', '.join('?' * len(chunk))})", list(chunk)
        done = conn.all(
            f"""UPDATE failures SET state = 'resolved', resolution = 'carewatch-' || status,
                auto_closed = status, version = version + 1, changed_by = ?, changed_at = ?
            WHERE failure_id {which}
              AND (state = 'open' OR resolution LIKE 'carewatch-%')
              AND COALESCE(auto_closed, '') <> status
              AND (status = 'withdrawn' OR (status = 'late' AND EXISTS (
                    SELECT 1 FROM failure_history h
                    WHERE h.failure_id = failures.failure_id AND h.status = 'missed')))
            RETURNING failure_id, status""",
            [CAREWATCH, now, *params],
        )
        if done:
            actions = sorted((fid, now, CAREWATCH, "auto-close", f"carewatch-{status}")
                             for fid, status in done)  # fmt: skip
            one = "(?, ?, ?, ?, ?)"
            conn.execute(
                "INSERT INTO actions (failure_id, at, actor, kind, reason) VALUES "
                + ", ".join([one] * len(actions)),
                [v for a in actions for v in a],
            )
            closed += len(done)
    return closed
