"""A PostgreSQL store's password from a file (a container secret), never in the URL."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest

from detectors.errors import ConfigError, RuntimeFault
from streams.store import open_store
from streams.store.db import PASSWORD_FILE_ENV


@pytest.mark.postgres
def test_the_password_comes_from_the_named_file(
    postgres_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = re.match(r"(postgresql://[^:/@]+):([^@]*)@(.*)", postgres_server)
    assert found, "the test server's URL carries its password"
    schema = f"t{uuid.uuid4().hex[:12]}"  # a schema of its own, dropped at the end
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in found[3] else "?"
    bare = f"{found[1]}@{found[3]}{sep}options=-csearch_path%3D{schema}"
    try:
        _check(bare, found[2], tmp_path, monkeypatch)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _check(bare: str, password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "postgres_password"
    secret.write_text(password + "\n")  # a trailing newline, as most secret files have
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    store = open_store(bare, create=True)
    assert store.dialect == "postgresql"
    store.close()

    secret.write_text("not the password\n")
    with pytest.raises(RuntimeFault) as refused:
        open_store(bare)
    assert "not the password" not in str(refused.value)
    assert password not in str(refused.value)


def test_a_missing_or_empty_password_file_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql://carewatch@127.0.0.1:1/carewatch"
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="cannot read the store's password file"):
        open_store(url)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="is empty"):
        open_store(url)
