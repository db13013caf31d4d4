"""Two `carewatch store init` at once on the real PostgreSQL (two hosts starting their
services together): both succeed, the schema is made once, each migration recorded once."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from streams.store import SCHEMA_VERSION, open_store
from streams.store.schema import schema_version

pytestmark = pytest.mark.postgres


@pytest.fixture
def fresh_schemas(postgres_server: str) -> Iterator[list[str]]:
    """Store URLs, each on an empty schema of its own; dropped at the end."""
    made: list[str] = []
    urls: list[str] = []
    sep = "&" if "?" in postgres_server else "?"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        for _ in range(6):
            name = f"t{uuid.uuid4().hex[:12]}"
            conn.execute(f"CREATE SCHEMA {name}")
            made.append(name)
            urls.append(f"{postgres_server}{sep}options=-csearch_path%3D{name}")
    try:
        yield urls
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            for name in made:
                conn.execute(f"DROP SCHEMA {name} CASCADE")


def test_two_inits_at_once_both_succeed_and_migrate_once(fresh_schemas: list[str]) -> None:
    # threads released together, many times over: the race is in the first statements
    for url in fresh_schemas[:5]:
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def init(
            url: str = url, start: threading.Barrier = start, errors: list[BaseException] = errors
        ) -> None:
            try:
                start.wait(timeout=30)
                open_store(url, create=True).close()
            except BaseException as exc:  # reported below, with the round
                errors.append(exc)

        threads = [threading.Thread(target=init) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, f"{url.rsplit('%3D', 1)[-1]}: {errors!r}"
        store = open_store(url)
        assert schema_version(store.db) == SCHEMA_VERSION
        with store.db.transaction(write=False) as conn:
            rows = conn.all("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
        store.close()


def test_two_init_commands_at_once(fresh_schemas: list[str]) -> None:
    """The same through the command, as two processes."""
    url = fresh_schemas[5]
    cmd = [sys.executable, "-m", "streams.cli", "store", "init", url]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = open_store(url)
    assert schema_version(store.db) == SCHEMA_VERSION
    store.close()
