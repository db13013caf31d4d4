"""The broker for every ``kafka``-marked integration test (worker, MLLP listener), and
the check that a compiled test pass really tests the compiled build.

``tests/run`` starts one (``deploy/kafka/broker start`` on a port of its own) and exports
its address as ``CAREWATCH_TEST_KAFKA``. Run by hand without it, the session fixture
starts one the same way and stops it at the end. If no broker can be had, the tests
fail with the reason: they are never skipped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROKER = ROOT / "deploy" / "kafka" / "broker"


def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``CAREWATCH_TEST_BUILD=compiled`` (``tests/run`` sets it for its second pass,
    over the install ``streams/compiled_build.py`` makes), refuse to start unless every
    module setup.py compiles is imported as an extension module: a pass that quietly
    imported the sources would test the wrong build."""
    if os.environ.get("CAREWATCH_TEST_BUILD") != "compiled":
        return
    # children started with `python -m` from the repository root would put the sources
    # first on their path: with safe paths they import the compiled build like this one
    os.environ["PYTHONSAFEPATH"] = "1"
    import importlib

    from streams.compiled_build import compiled_modules, stale

    plain = [
        f"{name} ({module.__file__})"
        for name in compiled_modules(ROOT)
        if not str((module := importlib.import_module(name)).__file__).endswith((".so", ".pyd"))
    ]
    if plain:
        raise pytest.UsageError(
            "CAREWATCH_TEST_BUILD=compiled, but these modules are plain Python: "
            + ", ".join(plain)
            + ". Build it and put it first: PYTHONPATH=$(python bench/compiled.py) pytest "
            "--import-mode=append (tests/run does)."
        )
    engine_file = Path(str(importlib.import_module("detectors.engine").__file__))
    if stale(ROOT, engine_file.parents[1]):
        raise pytest.UsageError(
            f"the compiled build in {engine_file.parents[1]} is older than the sources: "
            "rebuild it with python bench/compiled.py (tests/run does)"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The compiled pass runs the tests that need no broker: kafka-marked ones are left
    to the first pass, whatever ``-m`` says; so are the PostgreSQL and browser ones (the
    store and the web app are not compiled)."""
    if os.environ.get("CAREWATCH_TEST_BUILD") != "compiled":
        return

    def first_pass_only(item: pytest.Item) -> bool:
        return any(item.get_closest_marker(m) is not None for m in ("kafka", "postgres", "browser"))

    left = [item for item in items if first_pass_only(item)]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if not first_pass_only(item)]


def broker_env() -> dict[str, str]:
    """Environment for ``deploy/kafka/broker`` addressing the test broker."""
    env = dict(os.environ)
    env["CAREWATCH_KAFKA_PORT"] = os.environ.get("CAREWATCH_TEST_KAFKA_PORT", "29392")
    env["CAREWATCH_KAFKA_CONTROLLER_PORT"] = os.environ.get(
        "CAREWATCH_TEST_KAFKA_CONTROLLER_PORT", "29393"
    )
    env["CAREWATCH_KAFKA_STATE_DIR"] = os.environ.get(
        "CAREWATCH_TEST_KAFKA_STATE_DIR", str(ROOT / "deploy/kafka/.state-test")
    )
    return env


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    address = os.environ.get("CAREWATCH_TEST_KAFKA")
    if address:
        yield address
        return
    if os.environ.get("CI"):
        pytest.fail(
            "CAREWATCH_TEST_KAFKA is not set: the kafka tests need the broker that "
            "tests/run starts; run them through tests/run"
        )
    try:
        out = subprocess.run(
            [str(BROKER), "start"], env=broker_env(), capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        pytest.fail(f"could not start the test broker with {BROKER} start: {exc}\n{stderr}")
    address = out.stdout.strip().splitlines()[-1]
    os.environ["CAREWATCH_TEST_KAFKA"] = address
    try:
        yield address
    finally:
        subprocess.run([str(BROKER), "stop"], env=broker_env(), capture_output=True)


# --- PostgreSQL, for the store's tests (deploy/postgres/db) ------------------------------

PG_DB = ROOT / "deploy" / "postgres" / "db"


def pg_env() -> dict[str, str]:
    """Environment for ``deploy/postgres/db`` addressing the test cluster."""
    env = dict(os.environ)
    env["CAREWATCH_PG_PORT"] = os.environ.get("CAREWATCH_TEST_PG_PORT", "25432")
    env["CAREWATCH_PG_STATE_DIR"] = os.environ.get(
        "CAREWATCH_TEST_PG_STATE_DIR", str(ROOT / "deploy/postgres/.state-test")
    )
    return env


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of the test PostgreSQL: ``CAREWATCH_TEST_PG`` (tests/run starts it), or
    one started here and stopped at the end. Never skipped: no server, a failure."""
    url = os.environ.get("CAREWATCH_TEST_PG")
    if url:
        yield url
        return
    if os.environ.get("CI"):
        pytest.fail("CAREWATCH_TEST_PG is not set: run the store tests through tests/run")
    try:
        out = subprocess.run(
            [str(PG_DB), "start"], env=pg_env(), capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        pytest.fail(f"could not start the test PostgreSQL with {PG_DB} start: {exc}\n{stderr}")
    url = out.stdout.strip().splitlines()[-1]
    os.environ["CAREWATCH_TEST_PG"] = url
    try:
        yield url
    finally:
        subprocess.run([str(PG_DB), "stop"], env=pg_env(), capture_output=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store URL: an SQLite file, or a schema of its own on the test PostgreSQL
    (the tests of both databases are the same tests)."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    import uuid

    import psycopg

    base = request.getfixturevalue("postgres_server")
    schema = f"t{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
