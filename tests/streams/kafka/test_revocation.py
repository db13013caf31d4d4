"""What the worker does when a rebalance takes partitions away: it commits each revoked
partition's processed offset before the partition moves (faust drops what it has not
committed yet, and the next owner would publish those messages' outputs again), then
parks the partition's state.

No broker needed: the faust app is built, never started; the revocation signal is sent
as faust sends it, and the commit is a stand-in that records what it was asked."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from detectors.rules import load_settings
from streams.kafka import app as app_module
from streams.kafka.app import Runtime, build_app
from streams.kafka.config import KafkaConfig


class Commits:
    """Stands in for ``commit_now``: records each commit and what the worker still held
    when it was asked (so the order of commit and parking shows)."""

    def __init__(self, rt: Runtime, answer: bool | Exception = True) -> None:
        self.rt = rt
        self.answer = answer
        self.calls: list[dict[TP, int]] = []
        self.held_then: list[set[tuple[str, int]]] = []

    async def __call__(self, consumer: Any, offsets: Mapping[TP, int]) -> bool:
        self.calls.append(dict(offsets))
        self.held_then.append(set(self.rt.states))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: bool | Exception = True
) -> tuple[Any, Runtime, KafkaConfig, Commits]:
    """A worker app (never started) whose commits go to a ``Commits`` answering ``answer``."""
    config = KafkaConfig(bootstrap="127.0.0.1:1", data_dir=str(tmp_path))
    app, rt = build_app(config, load_settings(None), replay=True, lateness=600.0)
    commits = Commits(rt, answer)
    monkeypatch.setattr(app_module, "commit_now", commits)
    return app, rt, config, commits


def _holding(rt: Runtime, **last_offsets: int) -> None:
    """Give the worker stand-in partition states: ``events_0=1899`` is events partition
    0 processed up to offset 1899 (-1: nothing processed yet)."""
    for key, last in last_offsets.items():
        kind, p = key.rsplit("_", 1)
        rt.states[(kind, int(p))] = SimpleNamespace(last_offset=last)  # type: ignore[assignment]


def test_revoked_partitions_have_their_processed_offsets_committed_before_they_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, rt, config, commits = _worker(tmp_path, monkeypatch)
    _holding(rt, events_0=1899, events_1=-1, events_2=7, sessions_0=41)
    events, sessions = config.topics.events, config.topics.sessions
    revoked = {TP(events, 0), TP(events, 1), TP(sessions, 0), TP("somebody.else", 0)}

    asyncio.run(app.on_partitions_revoked.send(revoked))

    # the next offset to read, for each revoked partition that has processed anything
    assert commits.calls == [{TP(events, 0): 1900, TP(sessions, 0): 42}]
    # committed while the worker still held the states, which are parked afterwards
    assert commits.held_then == [{("events", 0), ("events", 1), ("events", 2), ("sessions", 0)}]
    assert set(rt.parked) == {("events", 0), ("events", 1), ("sessions", 0)}
    assert set(rt.states) == {("events", 2)}  # not revoked: still served


def test_a_topic_with_a_batch_in_progress_is_left_to_its_next_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its offsets are not all processed yet: the next owner repeats that batch.
    app, rt, config, commits = _worker(tmp_path, monkeypatch)
    _holding(rt, events_0=10, sessions_1=20)
    revoked = {TP(config.topics.events, 0), TP(config.topics.sessions, 1)}

    async def scenario() -> None:
        async with rt.locks["events"]:
            await app.on_partitions_revoked.send(revoked)

    asyncio.run(scenario())
    assert commits.calls == [{TP(config.topics.sessions, 1): 21}]
    assert set(rt.parked) == {("events", 0), ("sessions", 1)}


@pytest.mark.parametrize("answer", [False, OSError("coordinator moved")])
def test_a_commit_refused_on_revocation_still_lets_the_partitions_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: bool | Exception
) -> None:
    app, rt, config, commits = _worker(tmp_path, monkeypatch, answer)
    _holding(rt, events_0=5)

    asyncio.run(app.on_partitions_revoked.send({TP(config.topics.events, 0)}))
    assert commits.calls == [{TP(config.topics.events, 0): 6}]
    assert set(rt.parked) == {("events", 0)} and not rt.states


def test_nothing_processed_nothing_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, rt, config, commits = _worker(tmp_path, monkeypatch)
    _holding(rt, events_0=-1)
    asyncio.run(app.on_partitions_revoked.send({TP(config.topics.events, 0)}))
    assert commits.calls == []
