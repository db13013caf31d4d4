"""The store's one schema, as numbered migrations.

Each migration is a list of statements in the SQL both databases share; ``{id}`` stands
for an auto-numbered primary key and ``{append_only:TABLE}`` for the triggers that refuse
UPDATE and DELETE on an append-only table. ``migrate`` applies the missing ones in order,
each in its own transaction, and records it in ``schema_migrations``. A store written by
a newer Carewatch (a version this one does not know) is refused, never touched.

Times are epoch seconds (UTC) as double precision: one sortable type on both databases.
"""

from __future__ import annotations

import time

from detectors.errors import ConfigError
from streams.store.db import Connection, Database

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "check_schema", "migrate", "schema_version"]

_V1 = [
    """CREATE TABLE failures (
        failure_id TEXT PRIMARY KEY,
        detector TEXT NOT NULL,
        status TEXT NOT NULL,          -- Carewatch's latest: missed, late, violation, withdrawn
        status_rank INTEGER NOT NULL,  -- missed/violation 0 < late 1 < withdrawn 2
        patient TEXT,
        appointment TEXT,
        order_ref TEXT,
        encounter TEXT,
        site TEXT,
        specialty TEXT,
        clinic TEXT,
        opened_at DOUBLE PRECISION NOT NULL,
        due_at DOUBLE PRECISION,
        closed_at DOUBLE PRECISION,
        detected_at DOUBLE PRECISION NOT NULL,
        summary TEXT NOT NULL,
        record TEXT NOT NULL,          -- the latest failure record, as JSON
        state TEXT NOT NULL,           -- the people's side: open or resolved
        assignee TEXT,
        resolution TEXT,
        auto_closed TEXT,              -- the status Carewatch closed it for, once
        version INTEGER NOT NULL,      -- bumped on every change: optimistic concurrency
        changed_by TEXT,
        changed_at DOUBLE PRECISION,
        received_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX failures_state_due ON failures (state, due_at, failure_id)",
    "CREATE INDEX failures_detector ON failures (detector, state, due_at)",
    "CREATE INDEX failures_site ON failures (site, state, due_at)",
    "CREATE INDEX failures_assignee ON failures (assignee, state)",
    # the worklist's counts per detector: index-only scans of the open failures alone
    "CREATE INDEX failures_open_detector ON failures (detector) WHERE state = 'open'",
    "CREATE INDEX failures_open_site ON failures (site, detector) WHERE state = 'open'",
    "CREATE INDEX failures_patient ON failures (patient)",
    "CREATE INDEX failures_appointment ON failures (appointment)",
    "CREATE INDEX failures_order ON failures (order_ref)",
    "CREATE INDEX failures_encounter ON failures (encounter)",
    """CREATE TABLE failure_history (
        failure_id TEXT NOT NULL,
        status TEXT NOT NULL,
        detected_at DOUBLE PRECISION NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (failure_id, status)
    )""",
    """CREATE TABLE actions (
        id {id},
        failure_id TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,            -- take, assign, note, resolve, reopen, auto-close
        assignee TEXT,
        reason TEXT,
        note TEXT
    )""",
    "CREATE INDEX actions_failure ON actions (failure_id, id)",
    """CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT,
        active INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE web_sessions (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE sign_in_failures (
        id {id},
        user_name TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX sign_in_failures_user ON sign_in_failures (user_name, at)",
    """CREATE TABLE audit (
        id {id},
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,          -- view, take, assign, note, resolve, reopen, sign-in, ...
        failure_id TEXT,
        detail TEXT                    -- never a patient identifier
    )""",
    "CREATE INDEX audit_failure ON audit (failure_id, id)",
    "{append_only:audit}",
]

#: version -> (what it does, statements).
MIGRATIONS: dict[int, tuple[str, list[str]]] = {
    1: ("failures, history, actions, users, sessions, audit", _V1),
}
#: The schema version this Carewatch writes.
SCHEMA_VERSION = max(MIGRATIONS)


def _render(sql: str, dialect: str) -> list[str]:
    if sql.startswith("{append_only:"):
        table = sql.removeprefix("{append_only:").removesuffix("}")
        if dialect == "sqlite":
            return [
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                for op in ("UPDATE", "DELETE")
            ]
        return [
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{table} is append-only'; END $$",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()",
        ]
    ident = (
        "INTEGER PRIMARY KEY AUTOINCREMENT"
        if dialect == "sqlite"
        else "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    )
    return [sql.replace("{id}", ident)]


#: PostgreSQL advisory lock key held while a migration runs ("carewatch" in ASCII).
_MIGRATION_LOCK = 0x6361726577617463


def _ensure_table(conn: Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
    )


def schema_version(db: Database) -> int:
    """The newest migration applied to the store (0 for an empty database)."""
    with db.transaction(write=False) as conn:
        if db.dialect == "sqlite":
            found = conn.one(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            )
        else:
            found = conn.one("SELECT to_regclass('schema_migrations')")
            found = found if found and found[0] else None
        if not found:
            return 0
        row = conn.one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0] or 0)


def migrate(db: Database) -> list[int]:
    """Apply every missing migration; returns the versions applied (empty if up to date)."""
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise ConfigError(_newer(current))
    applied = []
    for version in sorted(v for v in MIGRATIONS if v > current):
        description, statements = MIGRATIONS[version]
        with db.transaction() as conn:
            if db.dialect == "postgresql":
                # one migrator at a time (two hosts running `store init` together): the
                # second waits here until the first commits, then finds it applied.
                # SQLite needs nothing: a write transaction already takes the write lock.
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            _ensure_table(conn)
            if conn.one("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)):
                continue  # another process applied it meanwhile
            for sql in statements:
                for stmt in _render(sql, db.dialect):
                    conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                (version, description, time.time()),
            )
        applied.append(version)
    return applied


def _newer(found: int) -> str:
    return (
        f"the store is at schema version {found}, newer than this Carewatch knows "
        f"({SCHEMA_VERSION}): upgrade Carewatch, or use another store"
    )


def check_schema(db: Database, *, upgrade: bool) -> None:
    """At start: a current store passes; an older one is upgraded when ``upgrade`` (else
    refused with what to run); an empty or newer one is refused."""
    found = schema_version(db)
    if found == SCHEMA_VERSION:
        return
    if found > SCHEMA_VERSION:
        raise ConfigError(_newer(found))
    if found == 0:
        raise ConfigError("the store has no Carewatch schema yet: run carewatch store init URL")
    if not upgrade:
        raise ConfigError(
            f"the store is at schema version {found}, this Carewatch needs "
            f"{SCHEMA_VERSION}: run carewatch store init URL to upgrade it"
        )
    migrate(db)
