"""The ``Store``: what Carewatch's sinks, web app and commands ask of the database.

One object over one ``Database`` (SQLite or PostgreSQL). Every method is one
transaction. ``clock`` (epoch seconds, UTC) is injected so tests can move time.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.errors import CarewatchError, ConfigError
from streams.store.accounts import (
    ROLES,
    User,
    hash_password,
    sign_in_wait,
    token_hash,
    verify_password,
)
from streams.store.db import Database, open_database
from streams.store.failures import CARE_STATUSES, FailureRow, UpsertResult, upsert_rows
from streams.store.schema import check_schema, migrate

__all__ = [
    "ACTION_KINDS",
    "RESOLUTIONS",
    "Conflict",
    "Forbidden",
    "Store",
    "WorklistPage",
    "WorklistQuery",
    "open_store",
]

#: Reasons a person may give when resolving; "other" needs a note.
RESOLUTIONS: dict[str, str] = {
    "patient-contacted": "patient contacted",
    "notice-outside-feed": "notice had been sent outside the feed",
    "result-found": "result found",
    "not-a-real-failure": "not a real failure",
    "other": "other (see note)",
}
#: Carewatch's own closing reasons (auto-close).
AUTO_RESOLUTIONS: dict[str, str] = {
    "carewatch-late": "closed by Carewatch: it happened, late",
    "carewatch-withdrawn": "closed by Carewatch: withdrawn, it was met in time",
}
ACTION_KINDS = ("take", "assign", "note", "resolve", "reopen")
SESSION_LIFETIME = 12 * 3600.0  # seconds


class Conflict(CarewatchError):
    """Someone else changed the failure since the page was shown: ``by`` at ``at``."""

    def __init__(self, by: str | None, at: float | None) -> None:
        self.by = by
        self.at = at
        super().__init__(f"changed by {by or 'someone'} meanwhile")


class Forbidden(CarewatchError):
    """The user's role does not allow this."""


@dataclass
class WorklistQuery:
    """Filters of the worklist; ``None`` means any. ``q`` is an exact patient,
    appointment, order or encounter id. ``state``: open, resolved or all."""

    detector: str | None = None
    site: str | None = None
    specialty: str | None = None
    clinic: str | None = None
    status: str | None = None
    assignee: str | None = None
    q: str | None = None
    state: str = "open"
    page: int = 1
    per_page: int = 50


@dataclass
class WorklistPage:
    """One page of the worklist, the total behind it and the counts per detector."""

    rows: list[dict[str, Any]]
    total: int
    counts: dict[str, int]
    query: WorklistQuery
    pages: int = 1
    options: dict[str, list[str]] = field(default_factory=dict)


_LIST_COLUMNS = (
    "failure_id, detector, status, patient, appointment, order_ref, encounter, site, "
    "specialty, clinic, opened_at, due_at, closed_at, detected_at, summary, state, assignee, "
    "resolution, version, changed_by, changed_at"
)
_NAMES = [c.strip() for c in _LIST_COLUMNS.split(",")]


def _dicts(rows: Sequence[Any], names: Sequence[str] = _NAMES) -> list[dict[str, Any]]:
    return [dict(zip(names, row, strict=True)) for row in rows]


class Store:
    """Failures, people's actions, accounts and the audit trail in one database."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.db.dialect

    def close(self) -> None:
        """Close the connections."""
        self.db.close()

    def _retry(self, work: Callable[[Any], Any]) -> Any:
        for attempt in range(5):
            try:
                with self.db.transaction() as conn:
                    return work(conn)
            except Exception as exc:
                if attempt == 4 or not self.db.is_retryable(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    # --- filling ---------------------------------------------------------------------

    def upsert(self, rows: Sequence[FailureRow]) -> UpsertResult:
        """Write failure records idempotently (see ``streams.store.failures``)."""
        if not rows:
            return UpsertResult()
        now = self.clock()
        result: UpsertResult = self._retry(lambda conn: upsert_rows(conn, rows, now))
        return result

    # --- reading ---------------------------------------------------------------------

    def _where(self, q: WorklistQuery, *, leave_out: str = "") -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        if q.state in ("open", "resolved"):
            parts.append("state = ?")
            params.append(q.state)
        for name in ("detector", "site", "specialty", "clinic", "status", "assignee"):
            value = getattr(q, name)
            if value and name != leave_out:
                parts.append(f"{name} = ?")
                params.append(value)
        if q.q:
            parts.append("(patient = ? OR appointment = ? OR order_ref = ? OR encounter = ?)")
            params += [q.q] * 4
        return (" WHERE " + " AND ".join(parts)) if parts else "", params

    def worklist(self, q: WorklistQuery) -> WorklistPage:
        """Failures matching ``q``, most overdue (earliest deadline) first."""
        where, params = self._where(q)
        per = max(1, min(q.per_page, 500))
        with self.db.transaction(write=False) as conn:
            total = int(conn.one(f"SELECT COUNT(*) FROM failures{where}", params)[0])
            pages = max(1, -(-total // per))
            page = max(1, min(q.page, pages))
            rows = conn.all(
                f"SELECT {_LIST_COLUMNS} FROM failures{where} "
                # NULLS LAST, not a CASE: the (.., state, due_at) indexes give the order
                "ORDER BY due_at NULLS LAST, failure_id "
                "LIMIT ? OFFSET ?",
                [*params, per, (page - 1) * per],
            )
            cwhere, cparams = self._where(q, leave_out="detector")
            counts = {
                d: int(n)
                for d, n in conn.all(
                    f"SELECT detector, COUNT(*) FROM failures{cwhere} GROUP BY detector "
                    "ORDER BY detector",
                    cparams,
                )
            }
        q.page = page
        return WorklistPage(_dicts(rows), total, counts, q, pages)

    def options(self) -> dict[str, list[str]]:
        """The values each filter can take (detectors, sites, ... present in the store)."""
        out: dict[str, list[str]] = {}
        with self.db.transaction(write=False) as conn:
            for name in ("detector", "site", "specialty", "clinic", "assignee"):
                out[name] = [
                    r[0]
                    for r in conn.all(
                        f"SELECT DISTINCT {name} FROM failures WHERE {name} IS NOT NULL "
                        f"ORDER BY {name} LIMIT 500"
                    )
                ]
        return out

    def failure(self, failure_id: str) -> dict[str, Any] | None:
        """The failure with its ``record`` (parsed), ``history`` and ``actions``."""
        import orjson

        with self.db.transaction(write=False) as conn:
            row = conn.one(
                f"SELECT {_LIST_COLUMNS}, record FROM failures WHERE failure_id = ?", (failure_id,)
            )
            if row is None:
                return None
            out = dict(zip([*_NAMES, "record"], row, strict=True))
            out["record"] = orjson.loads(out["record"])
            out["history"] = _dicts(
                conn.all(
                    "SELECT status, detected_at, received_at FROM failure_history "
                    "WHERE failure_id = ? ORDER BY detected_at, status",
                    (failure_id,),
                ),
                ("status", "detected_at", "received_at"),
            )
            # a status comes after the one it amends, whatever the watermarks said
            out["history"].sort(key=lambda h: (CARE_STATUSES[h["status"]], h["detected_at"]))
            out["actions"] = _dicts(
                conn.all(
                    "SELECT id, at, actor, kind, assignee, reason, note FROM actions "
                    "WHERE failure_id = ? ORDER BY id",
                    (failure_id,),
                ),
                ("id", "at", "actor", "kind", "assignee", "reason", "note"),
            )
        return out

    def feedback(self) -> list[dict[str, Any]]:
        """Per detector: failures, people's resolutions, how many said "not a real
        failure", and the precision that gives (None before any resolution)."""
        with self.db.transaction(write=False) as conn:
            totals = dict(conn.all("SELECT detector, COUNT(*) FROM failures GROUP BY detector"))
            rows = conn.all(
                """SELECT f.detector, COUNT(*),
                    SUM(CASE WHEN a.reason = 'not-a-real-failure' THEN 1 ELSE 0 END)
                FROM actions a JOIN failures f ON f.failure_id = a.failure_id
                WHERE a.kind = 'resolve' AND a.id = (
                    SELECT MAX(b.id) FROM actions b
                    WHERE b.failure_id = a.failure_id AND b.kind = 'resolve')
                GROUP BY f.detector"""
            )
        judged = {d: (int(n), int(bad or 0)) for d, n, bad in rows}
        out = []
        for det in sorted(totals):
            n, bad = judged.get(det, (0, 0))
            out.append(
                {
                    "detector": det,
                    "failures": int(totals[det]),
                    "resolved": n,
                    "not_real": bad,
                    "precision": (n - bad) / n if n else None,
                }
            )
        return out

    def resolutions(self) -> dict[str, str]:
        """``failure_id -> resolution`` of every failure resolved now (a person's reason,
        or Carewatch's ``carewatch-late`` / ``carewatch-withdrawn``); open ones are left out."""
        with self.db.transaction(write=False) as conn:
            return dict(
                conn.all(
                    "SELECT failure_id, resolution FROM failures "
                    "WHERE state = 'resolved' AND resolution IS NOT NULL"
                )
            )

    def open_by_detector_and_site(self) -> list[dict[str, Any]]:
        """Per (detector, site) of the failures still open on the worklist (not resolved
        by a person, not closed by Carewatch): how many, how many nobody has taken, and
        the deadline (epoch seconds, UTC; the detection time when there is none) of the
        longest-overdue open and open-and-untaken one. ``site`` as stored (None: no site)."""
        with self.db.transaction(write=False) as conn:
            rows = conn.all(
                """SELECT detector, site, COUNT(*),
                    SUM(CASE WHEN assignee IS NULL THEN 1 ELSE 0 END),
                    MIN(COALESCE(due_at, detected_at)),
                    MIN(CASE WHEN assignee IS NULL THEN COALESCE(due_at, detected_at) END)
                FROM failures WHERE state = 'open' GROUP BY detector, site"""
            )
        names = ("detector", "site", "open", "unassigned", "oldest_due", "oldest_unassigned_due")
        out = _dicts(rows, names)
        for row in out:
            row["open"], row["unassigned"] = int(row["open"]), int(row["unassigned"] or 0)
        return out

    # --- people's actions --------------------------------------------------------------

    def act(
        self,
        user: User,
        failure_id: str,
        kind: str,
        version: int,
        *,
        assignee: str | None = None,
        reason: str | None = None,
        note: str | None = None,
    ) -> int:
        """Apply one action if the failure is still at ``version``; returns the new
        version. Raises ``Conflict`` (who changed it, when) if it is not, ``Forbidden``
        for a viewer, ``ConfigError`` for an action that makes no sense."""
        if not user.may("coordinator"):
            raise Forbidden(f"{user.name} is a {user.role}: viewers cannot act on failures")
        note = (note or "").strip() or None
        if kind not in ACTION_KINDS:
            raise ConfigError(f"unknown action {kind!r}")
        if kind == "take":
            assignee = user.name
        if kind == "assign":
            assignee = (assignee or "").strip()
            if not assignee:
                raise ConfigError("assign to whom? name a user")
        if kind == "note" and not note:
            raise ConfigError("a note needs some text")
        if kind == "resolve":
            if reason not in RESOLUTIONS:
                raise ConfigError("resolve with one of the reasons given")
            if reason == "other" and not note:
                raise ConfigError('"other" needs a note saying what was done')
        now = self.clock()

        def work(conn: Any) -> int:
            row = conn.one(
                "SELECT version, state, changed_by, changed_at FROM failures WHERE failure_id = ?",
                (failure_id,),
            )
            if row is None:
                raise ConfigError("no such failure")
            if row[0] == version:  # (a stale version is a Conflict, below)
                if kind in ("take", "assign", "resolve") and row[1] != "open":
                    raise ConfigError("it is resolved already; reopen it first")
                if kind == "reopen" and row[1] == "open":
                    raise ConfigError("it is open already")
            if kind == "assign" and not conn.one(
                "SELECT 1 FROM users WHERE name = ? AND active = 1 AND role <> 'viewer'",
                (assignee,),
            ):
                raise ConfigError(f"no coordinator called {assignee!r}")
            sets = {"take": "assignee = ?", "assign": "assignee = ?", "note": "",
                    "resolve": "state = 'resolved', resolution = ?",
                    "reopen": "state = 'open', resolution = NULL"}[kind]  # fmt: skip
            extra: list[Any] = (
                [assignee] if kind in ("take", "assign") else [reason] if kind == "resolve" else []
            )
            cur = conn.execute(
                f"UPDATE failures SET {sets + ', ' if sets else ''}version = version + 1, "
                "changed_by = ?, changed_at = ? WHERE failure_id = ? AND version = ?",
                [*extra, user.name, now, failure_id, version],
            )
            if cur.rowcount != 1:
                raise Conflict(row[2], row[3])
            conn.execute(
                "INSERT INTO actions (failure_id, at, actor, kind, assignee, reason, note) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (failure_id, now, user.name, kind, assignee, reason, note),
            )
            detail = {"assign": f"to {assignee}", "resolve": reason}.get(kind)
            _audit(conn, now, user.name, kind, failure_id, detail)
            return version + 1

        result: int = self._retry(work)
        return result

    # --- accounts ------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password: str | None, by: str = "cli") -> None:
        """Create (or update the role and password of) a local account; ``by`` is who
        did it, for the audit trail (``cli`` from the command line)."""
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}")
        name = name.strip()
        if not name or len(name) > 64 or any(c.isspace() for c in name):
            raise ConfigError("a user name is 1-64 characters without spaces")
        hashed = hash_password(password) if password else None
        now = self.clock()

        def work(conn: Any) -> None:
            conn.execute(
                "INSERT INTO users (name, role, password_hash, active, created_at) "
                "VALUES (?, ?, ?, 1, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
                "password_hash = COALESCE(excluded.password_hash, users.password_hash), active = 1",
                (name, role, hashed, now),
            )
            _audit(conn, now, by, "user-set", None, f"{name} as {role}")

        self._retry(work)

    def disable_user(self, name: str, by: str = "cli") -> bool:
        """Stop an account signing in (its history stays); True if it existed."""
        now = self.clock()

        def work(conn: Any) -> bool:
            cur = conn.execute("UPDATE users SET active = 0 WHERE name = ?", (name,))
            conn.execute("DELETE FROM web_sessions WHERE user_name = ?", (name,))
            _audit(conn, now, by, "user-disable", None, name)
            return bool(cur.rowcount)

        result: bool = self._retry(work)
        return result

    def users(self) -> list[User]:
        """Every account."""
        with self.db.transaction(write=False) as conn:
            return [
                User(n, r, bool(a))
                for n, r, a in conn.all("SELECT name, role, active FROM users ORDER BY name")
            ]

    def user(self, name: str) -> User | None:
        """The account called ``name``, if active."""
        with self.db.transaction(write=False) as conn:
            row = conn.one("SELECT name, role, active FROM users WHERE name = ?", (name,))
        return User(row[0], row[1], bool(row[2])) if row and row[2] else None

    def sign_in(self, name: str, password: str) -> tuple[str, float]:
        """Check a password. Returns ``(session token, 0)`` on success, ``("", wait)``
        with the seconds to wait when the brake is on (the password is not even
        checked then), ``("", 0)`` for a wrong name or password."""
        now = self.clock()
        with self.db.transaction(write=False) as conn:
            wait = sign_in_wait(conn, name, now)
            row = conn.one("SELECT password_hash, active FROM users WHERE name = ?", (name,))
        if wait > 0:
            self.audit(name, "sign-in-braked", None, f"wait {wait:.0f} s")
            return "", wait
        stored = row[0] if row and row[1] else None
        if not verify_password(password, stored):

            def fail(conn: Any) -> None:
                conn.execute(
                    "INSERT INTO sign_in_failures (user_name, at) VALUES (?, ?)", (name, now)
                )
                _audit(conn, now, name, "sign-in-failed", None, None)

            self._retry(fail)
            return "", 0.0
        token = self.start_session(name)
        return token, 0.0

    def start_session(self, name: str) -> str:
        """A new web session for ``name`` (signed in by password or by the trusted
        proxy); returns its token."""
        now = self.clock()
        token = secrets.token_urlsafe(32)

        def work(conn: Any) -> None:
            conn.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO web_sessions (token_hash, user_name, csrf_token, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?)",
                (token_hash(token), name, secrets.token_urlsafe(32), now, now + SESSION_LIFETIME),
            )
            conn.execute("DELETE FROM sign_in_failures WHERE user_name = ?", (name,))
            _audit(conn, now, name, "sign-in", None, None)

        self._retry(work)
        return token

    def session(self, token: str) -> tuple[User, str] | None:
        """The user and CSRF token of a live session, or None."""
        if not token:
            return None
        with self.db.transaction(write=False) as conn:
            row = conn.one(
                "SELECT u.name, u.role, u.active, s.csrf_token FROM web_sessions s "
                "JOIN users u ON u.name = s.user_name "
                "WHERE s.token_hash = ? AND s.expires_at > ? AND u.active = 1",
                (token_hash(token), self.clock()),
            )
        return (User(row[0], row[1], True), row[3]) if row else None

    def end_session(self, token: str, name: str) -> None:
        """Sign out."""
        now = self.clock()

        def work(conn: Any) -> None:
            conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash(token),))
            _audit(conn, now, name, "sign-out", None, None)

        self._retry(work)

    # --- audit -----------------------------------------------------------------------------

    def audit(self, actor: str, action: str, failure_id: str | None, detail: str | None) -> None:
        """Append one audit row (never a patient identifier in ``detail``)."""
        now = self.clock()
        self._retry(lambda conn: _audit(conn, now, actor, action, failure_id, detail))

    def audit_rows(
        self, *, failure_id: str | None = None, limit: int | None = 200
    ) -> Iterator[dict[str, Any]]:
        """Audit rows, newest first (all of them with ``limit=None``)."""
        sql = "SELECT id, at, actor, action, failure_id, detail FROM audit"
        params: list[Any] = []
        if failure_id:
            sql += " WHERE failure_id = ?"
            params.append(failure_id)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self.db.transaction(write=False) as conn:
            rows = conn.all(sql, params)
        yield from _dicts(rows, ("id", "at", "actor", "action", "failure_id", "detail"))


def _audit(
    conn: Any, now: float, actor: str, action: str, failure_id: str | None, detail: str | None
) -> None:
    conn.execute(
        "INSERT INTO audit (at, actor, action, failure_id, detail) VALUES (?, ?, ?, ?, ?)",
        (now, actor, action, failure_id, detail),
    )


def open_store(
    url: str, *, create: bool = False, upgrade: bool = True, clock: Callable[[], float] = time.time
) -> Store:
    """Open the store at ``url`` (a file path or ``postgresql://`` URL). ``create``
    applies every migration (``carewatch store init``); otherwise the schema is checked,
    an older one upgraded when ``upgrade``, an empty or newer one refused."""
    db = open_database(url)
    if create:
        migrate(db)
    else:
        check_schema(db, upgrade=upgrade)
    return Store(db, clock)
