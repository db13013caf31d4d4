"""Connections to the two databases a store can live in: SQLite (a file) and PostgreSQL.

The store's SQL is written once, with ``?`` placeholders and the subset both databases
share (``ON CONFLICT``, ``RETURNING``-free); ``Database`` hides the few differences: the
placeholder style, the identity column, how a write transaction starts, and which
exception means "try again".
"""

from __future__ import annotations

import os
import queue
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detectors.errors import ConfigError, RuntimeFault

__all__ = ["Connection", "Database", "describe_url", "open_database"]

_PG_PREFIXES = ("postgresql://", "postgres://")


def describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class Connection:
    """One connection, with ``?`` placeholders on both databases."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        # PostgreSQL only: ``?:b`` is a parameter sent in binary format (an array of long
        # texts costs many times less that way: no quoting and escaping in Python)
        if self.dialect != "postgresql":
            return sql
        return sql.replace("%", "%%").replace("?:b", "%b").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the cursor (``fetchone``/``fetchall``/``rowcount``)."""
        return self.raw.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row (psycopg pipelines them: one round trip)."""
        if not rows:
            return
        if self.dialect == "postgresql":
            with self.raw.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self.raw.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row, or None."""
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row."""
        return list(self.execute(sql, params).fetchall())


class Database:
    """A small pool of connections to one database, handed out one per transaction."""

    def __init__(
        self,
        url: str,
        dialect: str,
        target: str,
        pool_size: int = 4,
        password: str | None = None,
    ) -> None:
        self.url = url
        self.dialect = dialect
        self._target = target
        self._password = password
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._pool_size = pool_size

    def _connect(self) -> Connection:
        if self.dialect == "sqlite":
            try:
                raw = sqlite3.connect(
                    self._target, timeout=30.0, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise ConfigError(f"cannot open the SQLite store {self._target}: {exc}") from None
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA foreign_keys=ON")
            return Connection(raw, "sqlite")
        import psycopg

        try:
            if self._password is not None:
                pg = psycopg.connect(self._target, connect_timeout=10, password=self._password)
            else:
                pg = psycopg.connect(self._target, connect_timeout=10)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeFault(
                f"cannot connect to the PostgreSQL store {describe_url(self.url)}: {first}"
            ) from None
        return Connection(pg, "postgresql")

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error.

        On SQLite a write transaction takes the write lock at once (``BEGIN IMMEDIATE``),
        so two writers queue instead of failing half-way through.
        """
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        ok = False
        try:
            if conn.dialect == "sqlite":
                conn.raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield conn
            conn.raw.commit() if conn.dialect == "postgresql" else conn.raw.execute("COMMIT")
            ok = True
        finally:
            if not ok:
                try:
                    conn.raw.rollback() if conn.dialect == "postgresql" else conn.raw.execute(
                        "ROLLBACK"
                    )
                except Exception:
                    conn.raw.close()
                    conn = None  # type: ignore[assignment]
            if conn is not None:
                if self._idle.qsize() < self._pool_size:
                    self._idle.put(conn)
                else:
                    conn.raw.close()

    def is_retryable(self, exc: BaseException) -> bool:
        """True for a deadlock or serialisation failure: the transaction may be run again."""
        if self.dialect == "sqlite":
            return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
        import psycopg.errors

        return isinstance(
            exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure
        )

    def close(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                self._idle.get_nowait().raw.close()
            except queue.Empty:
                return


#: Names a file holding the PostgreSQL password (a container secret), so that neither
#: the URL nor the environment carries it.
PASSWORD_FILE_ENV = "CAREWATCH_STORE_PASSWORD_FILE"


def _password_from_file(url: str) -> str | None:
    """The password in ``$CAREWATCH_STORE_PASSWORD_FILE`` (its first line), if set; a
    password in the URL itself wins."""
    name = os.environ.get(PASSWORD_FILE_ENV)
    if not name or re.search(r"://[^:/@]+:[^@]*@", url):
        return None
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the store's password file {name} ({PASSWORD_FILE_ENV}): {exc.strerror}"
        ) from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"the store's password file {name} ({PASSWORD_FILE_ENV}) is empty")
    return lines[0]


def open_database(url: str) -> Database:
    """``postgresql://...`` (or ``postgres://``) for PostgreSQL; ``sqlite:///PATH``,
    ``sqlite:PATH`` or a plain file path for SQLite. A PostgreSQL URL without a password
    takes it from the file named by ``$CAREWATCH_STORE_PASSWORD_FILE`` when set (else
    libpq's own ``PGPASSWORD`` / ``~/.pgpass``)."""
    if not url:
        raise ConfigError("no store given: name an SQLite file or a postgresql:// URL")
    if url.startswith(_PG_PREFIXES):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError(
                "a PostgreSQL store needs psycopg 3: pip install 'carewatch[store]'"
            ) from None
        return Database(url, "postgresql", url, password=_password_from_file(url))
    if "://" in url and not url.startswith("sqlite://"):
        raise ConfigError(
            f"unknown store URL {describe_url(url)!r}: use a file path, sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DB"
        )
    # sqlite:///abs/path.db and sqlite:rel.db; a plain path is a path
    path = url.removeprefix("sqlite:").removeprefix("//") if url.startswith("sqlite:") else url
    if path != ":memory:":
        p = Path(path)
        if p.exists() and p.is_dir():
            raise ConfigError(
                f"the store {path} is a directory; name a file such as {p}/carewatch.db"
            )
        if not p.parent.exists():
            raise ConfigError(f"cannot create the store {path}: its directory does not exist")
    return Database(url, "sqlite", path)
