"""``carewatch kafka sink`` on the real broker: replay, kill -9, two sinks at once.

Failure records are produced straight onto a failures topic of the test's own (as a
worker would write them, a status amended now and then, some records twice); the sink
runs as a subprocess, as an operator would run it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from streams.store import WorklistQuery, open_store
from tests.streams.kafka.harness import Setup
from tests.streams.store.support import line, record

pytestmark = pytest.mark.kafka

N = 1500


def history() -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The topic's records in order, and each failure's latest status."""
    out: list[tuple[str, bytes]] = []
    latest: dict[str, str] = {}
    for n in range(N):
        r = record(n)
        out.append((r["failure_id"], line(r)))
        latest[r["failure_id"]] = "missed"
    for n in range(0, N, 3):
        r = record(n, "late")
        out.append((r["failure_id"], line(r)))
        latest[r["failure_id"]] = "late"
    for n in range(0, N, 5):
        r = record(n, "withdrawn")
        out.append((r["failure_id"], line(r)))
        out.append((r["failure_id"], line(r)))  # delivered twice
        latest[r["failure_id"]] = "withdrawn"
    out.append(("junk", b"not a failure record"))
    return out, latest


@pytest.fixture
def topic(kafka_bootstrap: str, tmp_path: Path) -> tuple[Setup, dict[str, str]]:
    setup = Setup(kafka_bootstrap, tmp_path, partitions=3)
    records, latest = history()
    producer = setup.producer()
    for key, value in records:
        producer.send(setup.topics["failures"], key=key.encode(), value=value)
    producer.flush()
    producer.close()
    return setup, latest


_LOGS: dict[int, Any] = {}  # sink pid -> the file its stderr goes to


def start_sink(setup: Setup, store: str, group: str, *more: str) -> subprocess.Popen[bytes]:
    # stderr into a file, not a pipe nobody reads while the test waits: a sink that logs
    # much (reconnecting while the broker is away) would block on a full pipe
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the process, in finish)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "kafka", "sink", "--store", store,
         "--sink-group", group, *more],
        env=setup.env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    _LOGS[proc.pid] = log
    return proc


def stderr_of(proc: subprocess.Popen[bytes]) -> str:
    log = _LOGS[proc.pid]
    log.seek(0)
    return log.read().decode(errors="replace")


def finish(proc: subprocess.Popen[bytes]) -> str:
    proc.wait(timeout=300)
    err = stderr_of(proc)
    _LOGS.pop(proc.pid).close()
    assert proc.returncode == 0, err
    return err


def stored(store_url: str) -> dict[str, str]:
    store = open_store(store_url)
    try:
        page = store.worklist(WorklistQuery(state="all", per_page=500))
        found: dict[str, str] = {}
        for p in range(1, page.pages + 1):
            for row in store.worklist(WorklistQuery(state="all", per_page=500, page=p)).rows:
                assert row["failure_id"] not in found
                found[row["failure_id"]] = row["status"]
        return found
    finally:
        store.close()


def count(store_url: str) -> int:
    store = open_store(store_url)
    try:
        return store.worklist(WorklistQuery(state="all", per_page=1)).total
    finally:
        store.close()


def test_replay_leaves_each_failure_once_with_its_latest_status(
    store_url: str, topic: tuple[Setup, dict[str, str]]
) -> None:
    setup, latest = topic
    setup.cli("store", "init", store_url)
    err = finish(start_sink(setup, store_url, "sink-a", "--idle-exit", "3"))
    assert "not a failure record, skipped" in err  # the junk record, by its offset
    assert stored(store_url) == latest
    # a second group replays the whole topic: nothing changes
    err = finish(start_sink(setup, store_url, "sink-b", "--idle-exit", "3"))
    assert "0 new failures, 0 amended" in err
    assert stored(store_url) == latest
    # the withdrawn and the late-after-missed ones were closed by Carewatch, once each
    store = open_store(store_url)
    still_open = store.worklist(WorklistQuery(per_page=1)).total
    assert still_open == sum(1 for v in latest.values() if v == "missed")
    f = store.failure("f000015")
    assert f is not None and [a["kind"] for a in f["actions"]].count("auto-close") == 1
    store.close()


def test_a_sink_killed_mid_way_and_restarted_loses_nothing(
    store_url: str, topic: tuple[Setup, dict[str, str]]
) -> None:
    setup, latest = topic
    setup.cli("store", "init", store_url)
    proc = start_sink(setup, store_url, "sink-k", "--batch", "50")
    deadline = time.monotonic() + 120
    while count(store_url) == 0:
        assert time.monotonic() < deadline, "the sink wrote nothing"
        assert proc.poll() is None, stderr_of(proc)
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert count(store_url) < N  # killed before the end
    finish(start_sink(setup, store_url, "sink-k", "--idle-exit", "3"))
    assert stored(store_url) == latest


def test_two_sinks_at_once_in_one_group_and_in_two(
    store_url: str, topic: tuple[Setup, dict[str, str]]
) -> None:
    setup, latest = topic
    setup.cli("store", "init", store_url)
    procs = [
        start_sink(setup, store_url, "shared", "--batch", "100", "--idle-exit", "5"),
        start_sink(setup, store_url, "shared", "--batch", "100", "--idle-exit", "5"),
        start_sink(setup, store_url, "own", "--batch", "100", "--idle-exit", "5"),
    ]
    for proc in procs:
        finish(proc)
    assert stored(store_url) == latest


def test_a_running_sink_rides_out_a_broker_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    from tests.conftest import BROKER, broker_env

    status = subprocess.run(
        [str(BROKER), "status"], env=broker_env(), capture_output=True, text=True
    )
    assert status.stdout.startswith(f"running {kafka_bootstrap} "), (
        f"this test restarts the broker at {kafka_bootstrap} with deploy/kafka/broker, which "
        f"manages another: {status.stdout.strip()!r}; point CAREWATCH_TEST_KAFKA_PORT / "
        "_STATE_DIR at the broker under test"
    )
    setup = Setup(kafka_bootstrap, tmp_path, partitions=3)
    store_url = str(tmp_path / "restart.db")
    setup.cli("store", "init", store_url)
    records, latest = history()
    half = len(records) // 2

    def produce(part: list[tuple[str, bytes]]) -> None:
        producer = setup.producer()
        for key, value in part:
            producer.send(setup.topics["failures"], key=key.encode(), value=value)
        producer.flush()
        producer.close()

    produce(records[:half])
    proc = start_sink(setup, store_url, "sink-r", "--batch", "200")
    setup.wait_for("the first rows", lambda: count(store_url) > 0, 120, 0.2)
    out = subprocess.run([str(BROKER), "restart"], env=broker_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    produce(records[half:])
    try:
        setup.wait_for("every failure", lambda: stored(store_url) == latest, 240, 1.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the sink's stderr\n{stderr_of(proc)[-6000:]}") from None
    assert proc.poll() is None, stderr_of(proc)  # it rode out the restart
    proc.send_signal(signal.SIGTERM)
    err = finish(proc)
    assert "store sink stopped" in err
