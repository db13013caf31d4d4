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


_INSERT_HISTORY = (
    "INSERT INTO failure_history (failure_id, status, detected_at, received_at, record) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (failure_id, status) DO NOTHING"
)
_UPSERT = """INSERT INTO failures (failure_id, detector, status, status_rank, patient,
    appointment, order_ref, encounter, site, specialty, clinic, opened_at, due_at,
    closed_at, detected_at, summary, record, state, version, received_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', 1, ?)
    ON CONFLICT (failure_id) DO UPDATE SET
        status = excluded.status, status_rank = excluded.status_rank,
        closed_at = excluded.closed_at, detected_at = excluded.detected_at,
        summary = excluded.summary, record = excluded.record,
        version = failures.version + 1, received_at = excluded.received_at
    WHERE excluded.status_rank > failures.status_rank"""


def upsert_rows(conn: Connection, rows: Sequence[FailureRow], now: float) -> UpsertResult:
    """Write ``rows`` inside the caller's transaction; idempotent, order-independent.

    Rows are written in ``failure_id`` order, so two writers lock rows in the same order
    (no deadlock between two sinks on PostgreSQL).
    """
    latest: dict[str, FailureRow] = {}
    for row in rows:
        seen = latest.get(row.failure_id)
        if seen is None or row.rank > seen.rank:
            latest[row.failure_id] = row
    history = sorted(
        {(r.failure_id, r.status): r for r in rows}.values(),
        key=lambda r: (r.failure_id, r.status),
    )
    conn.executemany(
        _INSERT_HISTORY,
        [(r.failure_id, r.status, r.detected_at, now, r.record) for r in history],
    )
    ids = sorted(latest)
    before = _versions(conn, ids)
    conn.executemany(
        _UPSERT,
        [
            (
                r.failure_id,
                r.detector,
                r.status,
                r.rank,
                r.patient,
                r.appointment,
                r.order_ref,
                r.encounter,
                r.site,
                r.specialty,
                r.clinic,
                r.opened_at,
                r.due_at,
                r.closed_at,
                r.detected_at,
                r.summary,
                r.record,
                now,
            )
            for r in (latest[i] for i in ids)
        ],
    )
    after = _versions(conn, ids)
    result = UpsertResult()
    for fid in ids:
        if fid not in before:
            result.new += 1
        elif after.get(fid) != before[fid]:
            result.amended += 1
        else:
            result.unchanged += 1
    result.auto_closed = auto_close(conn, ids, now)
    return result


def _versions(conn: Connection, ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for fid, version in conn.all(
            f"SELECT failure_id, version FROM failures WHERE failure_id IN ({marks})", chunk
        ):
            found[fid] = version
    return found


def auto_close(conn: Connection, ids: list[str], now: float) -> int:
    """Close, once per status, the failures among ``ids`` that Carewatch amended and no
    person has resolved: withdrawn ones, and late ones that were missed before. One that
    Carewatch itself closed as late and then withdrew gets the newer reason."""
    closed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        candidates = conn.all(
            f"""SELECT f.failure_id, f.status FROM failures f
            WHERE f.failure_id IN ({marks})
              AND (f.state = 'open' OR f.resolution LIKE 'carewatch-%')
              AND COALESCE(f.auto_closed, '') <> f.status
              AND (f.status = 'withdrawn' OR (f.status = 'late' AND EXISTS (
                    SELECT 1 FROM failure_history h
                    WHERE h.failure_id = f.failure_id AND h.status = 'missed')))
            ORDER BY f.failure_id""",
            chunk,
        )
        for fid, status in candidates:
            reason = f"carewatch-{status}"
            cur = conn.execute(
                """UPDATE failures SET state = 'resolved', resolution = ?, auto_closed = ?,
                    version = version + 1, changed_by = ?, changed_at = ?
                WHERE failure_id = ? AND (state = 'open' OR resolution LIKE 'carewatch-%')
                  AND status = ?
                  AND COALESCE(auto_closed, '') <> ?""",
                (reason, status, CAREWATCH, now, fid, status, status),
            )
            if cur.rowcount == 1:
                conn.execute(
                    "INSERT INTO actions (failure_id, at, actor, kind, reason) "
                    "VALUES (?, ?, ?, 'auto-close', ?)",
                    (fid, now, CAREWATCH, reason),
                )
                closed += 1
    return closed
