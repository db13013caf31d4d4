"""The listener's adapter memory survives a crash: a real ``kill -9`` of a listener
process between an SIU^S12 and the SIU^S13 that moves it, and the journal's rules
(replay, a torn last line, compaction, one listener per file)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.errors import ConfigError
from streams.adapters import AdapterMemory, convert_message
from streams.mllp.memory_file import MemoryFile

from .support import sample
from .test_listen_command import ROOT, exchange, wait_for_line


def start_listener(tmp_path: Path, log_name: str) -> tuple[subprocess.Popen[bytes], int]:
    command = [
        sys.executable,
        "-m",
        "streams.cli",
        "listen",
        "mllp",
        "--port",
        "0",
        "--out",
        str(tmp_path / "events.jsonl"),
        "--rejected",
        str(tmp_path / "rejected.jsonl"),
    ]
    log = tmp_path / log_name
    with open(log, "wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    port = int(wait_for_line(log, r"listening for MLLP on 127\.0\.0\.1:(\d+)", process)[1])
    return process, port


def test_the_memory_survives_kill_9_by_default(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the listener inherits it: world-readable without care
    try:
        first, port = start_listener(tmp_path, "first.log")
    finally:
        os.umask(previous)
    try:
        assert exchange(port, [sample("SIU-S12-01.hl7")]) == ["AA"]
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        second, port = start_listener(tmp_path, "second.log")
        try:
            assert exchange(port, [sample("SIU-S13-01.hl7")]) == ["AA"]
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    booked, moved = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert moved["type"] == "appointment.rescheduled"
    # Only the memory of the booking, made before the crash, can say this:
    assert moved["attrs"]["previous_start"] == booked["attrs"]["start"]
    # The files hold patient identifiers: owner-only whatever the umask.
    for name in ("events.jsonl", "events.jsonl.memory", "events.jsonl.memory.journal"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def _observe(store: MemoryFile, message: str) -> list[dict[str, object]]:
    records = convert_message(sample(message), memory=store.memory)
    store.commit()
    return [r.to_dict() for r in records if hasattr(r, "type")]


def test_reopening_replays_the_journal_and_ignores_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "memory.json"
    store = MemoryFile.open(path)
    _observe(store, "SIU-S12-01.hl7")
    # a crash: nothing closed, and half a line after the last fsync-ed one
    journal = path.with_name("memory.json.journal")
    assert journal.read_bytes().count(b"\n") == 1
    with open(journal, "ab") as f:
        f.write(b'[["a","999","MSGX",16')
    store._lock.close()  # what the kernel does for a killed process
    again = MemoryFile.open(path)
    assert again.memory.appointments.get("36996") is not None
    assert "999" not in again.memory.appointments
    assert journal.read_bytes() == b""  # folded into the snapshot
    again.close()
    assert AdapterMemory.from_dict(json.loads(path.read_text())).appointments.get("36996")


def test_a_damaged_journal_line_before_the_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "memory.json"
    path.with_name("memory.json.journal").write_bytes(b"not json\n[]\n")
    with pytest.raises(ConfigError, match="damaged at line 1"):
        MemoryFile.open(path)


def test_the_journal_is_folded_into_the_snapshot_as_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "memory.json"
    store = MemoryFile.open(path, compact_after=2)
    _observe(store, "SIU-S12-01.hl7")
    _observe(store, "SIU-S13-01.hl7")  # the second line: folded
    journal = path.with_name("memory.json.journal")
    assert journal.read_bytes() == b""
    assert "36996" in path.read_text()
    store.close()


def test_one_listener_per_memory_file(tmp_path: Path) -> None:
    path = tmp_path / "memory.json"
    store = MemoryFile.open(path)
    try:
        with pytest.raises(ConfigError, match="in use by another listener"):
            MemoryFile.open(path)
    finally:
        store.close()
    MemoryFile.open(path).close()  # free again once closed


def test_place_and_version_rank_come_back_from_the_journal(tmp_path: Path) -> None:
    """What a cancellation needs from its booking (the place) and what tells an older
    FHIR version (the rank) survive a restart, from the journal and from a snapshot."""
    path = tmp_path / "memory.json"
    store = MemoryFile.open(path)
    store.memory.appointments.observe(
        "A1", "m1", 100.0, "booked", place=(("clinic", "C1"), ("site", "S")), rank=(0, 3.0)
    )
    store.commit()
    del store  # a crash: no close, the journal holds it
    again = MemoryFile.open(path)
    state = again.memory.appointments.get("A1")
    assert state is not None
    assert (state.place, state.rank) == ((("clinic", "C1"), ("site", "S")), (0, 3.0))
    assert again.memory.appointments.is_older("A1", (0, 2.0))
    again.close()
